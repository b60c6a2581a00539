# SPDX-License-Identifier: GPL-3.0-or-later
"""depmirror.mirroring.alertmanager: an ansible-rulebook event source for Alertmanager's webhook, with the
checks of depmirror's runner (docs/eda.md).

ansible.eda's alertmanager source accepts any POST from anyone and puts the raw alert (labels, annotations,
URLs) on the rulebook's queue, from where it reaches ansible-playbook as extra vars that Ansible templates.
This one authenticates the sender, bounds the body, parses Alertmanager's v4 payload with the runner's parser
and checks every alert's labels against the graph (and the store's applied plan) with the runner's roster,
then emits one event per alert that carries only values it has checked: names the graph defines, a hex
fingerprint, a normalised timestamp. Annotations, URLs and unchecked labels never leave this file.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DOCUMENTATION = r"""
---
short_description: Receive Alertmanager webhooks, authenticated, with labels checked against the graph.
description:
  - An ansible-rulebook event source that listens for Alertmanager's webhook (v4 payload) on
    C(POST /alertmanager), as C(depmirror serve) does, and emits one event per alert whose C(dependency)
    and C(instance) labels name an instance the graph places (or the state store records).
  - Each event carries only checked fields - C(dependency), C(instance) (the host), C(zone) (from the graph,
    not from a label), C(status), C(action), C(alertname), C(fingerprint), C(startsAt), and C(trigger) (the
    last three with the source's name and when it received the alert, as one mapping for
    C(depmirror_trigger)). Annotations, URLs and other labels are dropped.
  - Needs the depmirror library in the Python that runs ansible-rulebook (the collection's requirements.txt).
options:
  host:
    description: Address to listen on. Anything but a loopback address needs O(auth.type) bearer or basic.
    type: str
    default: 127.0.0.1
  port:
    description: TCP port to listen on.
    type: int
    default: 5050
  graph:
    description: The dependency graph file the labels are checked against.
    type: path
    required: true
  state_store:
    description:
      - The state store (as C(depmirror serve)'s C(store)) whose applied plan says where instances run after
        C(adjust); without it, only the hosts the graph's plan places are accepted.
    type: str
  auth:
    description:
      - The runner config's C(auth) mapping - C(type) (bearer, basic or none), C(token_env) or C(token_file),
        C(username), C(password_env) or C(password_file). Secrets are at least 16 bytes.
    type: dict
    default: {type: bearer}
  max_body_bytes:
    description: Larger request bodies are refused with 413.
    type: int
    default: 1048576
  labels:
    description: Names of the labels that carry the dependency (C(dependency)) and the instance (C(instance)).
    type: dict
    default: {dependency: dependency, instance: instance}
"""

EXAMPLES = r"""
---
- depmirror.mirroring.alertmanager:
    host: 127.0.0.1
    port: 5050
    graph: /srv/depmirror/graph.yml
    state_store: sqlite:////var/lib/depmirror/depmirror.db
    auth:
      type: bearer
      token_env: DEPMIRROR_EDA_TOKEN
"""

try:
    from aiohttp import web

    from depmirror.errors import ConfigError
    from depmirror.graph.load import load_graph
    from depmirror.runner.app import authorized
    from depmirror.runner.config import AuthConfig, read_auth
    from depmirror.runner.dependencies import load_placed_instances
    from depmirror.runner.payload import Notification, PayloadError, parse_notification
    from depmirror.runner.policy import ACTION_LABEL, action_label_reason
    from depmirror.runner.roster import Roster, RosterSource
    from depmirror.runner.store_caller import StoreCaller
    from depmirror.store.factory import open_store
except ImportError as _missing:  # reported by main(), where ansible-rulebook shows it as the source's error
    _IMPORT_ERROR: ImportError | None = _missing
else:
    _IMPORT_ERROR = None

NAME = "depmirror.mirroring.alertmanager"
ARGS = f"{NAME} (rulebook source arguments)"
log = logging.getLogger(NAME)
KNOWN_ARGS = ("host", "port", "graph", "state_store", "auth", "max_body_bytes", "labels")
# Alertmanager's fingerprint is 16 hex digits; anything else did not come from an Alertmanager, and free
# text here would reach the playbook's extra vars, which Ansible templates.
FINGERPRINT = re.compile(r"[0-9a-f]{1,64}")
# Prometheus refuses alert names that are not metric names (rulefmt), so nothing else is a real alertname.
ALERTNAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]{0,199}")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str
    port: int
    auth: AuthConfig
    max_body_bytes: int
    graph: Path
    state_store: str
    dependency_label: str
    instance_label: str
    placed: Mapping[str, frozenset[str]]
    zones: Mapping[str, str]


def read_settings(args: Mapping[str, Any]) -> Settings:
    """The rulebook's source arguments, checked; ConfigError names the argument and the fix."""
    if _IMPORT_ERROR is not None:
        raise RuntimeError(
            f"{NAME} needs the depmirror library in the Python that runs ansible-rulebook "
            f"({_IMPORT_ERROR}); fix: python -m pip install -r <collection>/requirements.txt"
        )
    args = {key: value for key, value in args.items() if key != "eda_feedback_queue"}
    for key in args:
        if key not in KNOWN_ARGS:
            raise ConfigError(ARGS, key, "unknown argument", f"known arguments: {', '.join(KNOWN_ARGS)}")
    host = _text(args, "host", "127.0.0.1")
    port = _integer(args, "port", 5050, 1, 65535)
    graph_arg = _text(args, "graph", "")
    if not graph_arg:
        raise ConfigError(ARGS, "graph", "is required", "graph: PATH of the dependency graph file")
    graph_path = Path(graph_arg).expanduser().resolve()
    if not graph_path.is_file():
        raise ConfigError(ARGS, "graph", f"{graph_path} does not exist", "point graph: at the graph file")
    graph = load_graph(graph_path)
    placed = load_placed_instances(graph_path, config_file=ARGS)
    labels = args.get("labels") or {}
    if not isinstance(labels, dict):
        raise ConfigError(ARGS, "labels", "must be a mapping", "e.g. {dependency: dependency, instance: instance}")
    return Settings(
        host=host,
        port=port,
        auth=read_auth(args.get("auth", {"type": "bearer"}), file=ARGS, field="auth", host=host),
        max_body_bytes=_integer(args, "max_body_bytes", 1_048_576, 1024, 64 * 1_048_576),
        graph=graph_path,
        state_store=_text(args, "state_store", ""),
        dependency_label=_text(labels, "dependency", "dependency", where="labels."),
        instance_label=_text(labels, "instance", "instance", where="labels."),
        placed=placed,
        zones={host_name: vm.zone for host_name, vm in graph.vms.items()},
    )


def alert_events(
    notification: Notification, roster: Roster, settings: Settings, *, received_at: str = ""
) -> tuple[list[dict[str, Any]], list[str]]:
    """One event per alert that selects a known instance, built only from checked values; and, for every
    other alert, why it selects nothing (for the log)."""
    events: list[dict[str, Any]] = []
    ignored: list[str] = []
    for index, alert in enumerate(notification.alerts):
        dependency = alert.labels.get(settings.dependency_label, "")
        instance = alert.labels.get(settings.instance_label, "")
        reason = roster.reason(
            dependency, instance, dependency_label=settings.dependency_label, instance_label=settings.instance_label
        ) or action_label_reason(alert.labels)
        alertname = alert.labels.get("alertname", "")
        if reason is None and not FINGERPRINT.fullmatch(alert.fingerprint):
            reason = "fingerprint is not Alertmanager's (hex digits)"
        if reason is None and alertname and not ALERTNAME.fullmatch(alertname):
            reason = "alertname is not a Prometheus alert name"
        if reason is not None:
            ignored.append(f"alerts[{index}]: {reason}")
            continue
        host = instance.removeprefix(f"{dependency}@")
        starts_at = datetime.fromisoformat(alert.starts_at).astimezone(UTC).isoformat()
        trigger = {"type": "alert", "source": NAME, "alertname": alertname, "fingerprint": alert.fingerprint}
        events.append(
            {
                "dependency": dependency,
                "instance": host,
                "zone": settings.zones.get(host, ""),
                "status": alert.status,
                # Absent means rollback, as for the runner (policy.ACTIONABLE).
                "action": alert.labels.get(ACTION_LABEL, "") or "rollback",
                "alertname": alertname,
                "fingerprint": alert.fingerprint,
                "startsAt": starts_at,
                # The same values as one mapping for depmirror_trigger: ansible-rulebook renders action
                # arguments with Jinja's native types, so "{{ event.fingerprint }}" alone would turn a
                # fingerprint of decimal digits into an int; "{{ event.trigger }}" passes the mapping as is.
                # received_at: when this source got the POST, as the runner records it (docs/performance.md).
                "trigger": {**trigger, "starts_at": starts_at, "received_at": received_at},
            }
        )
    return events, ignored


def build_app(queue: Any, settings: Settings, roster: Any) -> web.Application:
    """The HTTP side: `roster` has `async current() -> Roster` (a RosterSource, or a fixed one)."""

    async def receive(request: web.Request) -> web.Response:
        if settings.auth.type != "none" and not authorized(settings.auth, request.headers.get("Authorization", "")):
            challenge = "Bearer" if settings.auth.type == "bearer" else "Basic"
            return _error(401, "missing or wrong credentials", {"WWW-Authenticate": f'{challenge} realm="depmirror"'})
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            return _error(413, f"body larger than {settings.max_body_bytes} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:  # chunked bodies have no Content-Length to check first
            return _error(413, f"body larger than {settings.max_body_bytes} bytes")
        try:
            notification = parse_notification(body)
        except PayloadError as error:
            return _error(400, str(error))
        received_at = datetime.now(UTC).isoformat()
        try:
            current = await roster.current()
        except Exception:
            # The store, not the input: 503 makes Alertmanager send the notification again later.
            log.exception("%s: the state store's applied plan cannot be read", NAME)
            return _error(503, "the state store cannot be read right now; retry")
        events, ignored = alert_events(notification, current, settings, received_at=received_at)
        for reason in ignored:
            log.warning("%s: ignored %s", NAME, reason)
        for event in events:
            await queue.put(event)
        return web.json_response({"status": "accepted", "events": len(events), "ignored": len(ignored)}, status=202)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=settings.max_body_bytes)
    app.router.add_post("/alertmanager", receive)
    app.router.add_get("/healthz", healthz)
    return app


async def main(queue: Any, args: dict[str, Any]) -> None:
    """ansible-rulebook's entry point: serve until the rulebook stops (the task is cancelled)."""
    settings = read_settings(args)
    caller = None
    if settings.state_store:
        caller = StoreCaller(open_store(settings.state_store))
        roster: Any = RosterSource(settings.placed, caller)
    else:
        roster = _Fixed(Roster(settings.placed))
    runner = web.AppRunner(build_app(queue, settings, roster), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        log.info("%s listening on http://%s:%d/alertmanager", NAME, settings.host, settings.port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        if caller is not None:
            caller.shutdown()
            caller.store.close()


class _Fixed:
    """The graph's roster, when no store says where `adjust` put things."""

    def __init__(self, roster: Roster) -> None:
        self.roster = roster

    async def current(self) -> Roster:
        return self.roster


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


def _text(args: Mapping[str, Any], key: str, default: str, where: str = "") -> str:
    value = args.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(ARGS, where + key, f"must be a string, got {type(value).__name__}")
    return value


def _integer(args: Mapping[str, Any], key: str, default: int, minimum: int, maximum: int) -> int:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigError(ARGS, key, f"must be an integer in {minimum}..{maximum}, got {value!r}")
    return value
