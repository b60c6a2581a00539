"""The HTTP side of the runner: validate, persist, answer 202. Acting happens in the worker."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from depmirror.runner import policy
from depmirror.runner.api import routes as api_routes
from depmirror.runner.config import AuthConfig, RunnerConfig
from depmirror.runner.events import decision_event
from depmirror.runner.metrics import RunnerMetrics
from depmirror.runner.payload import Notification, PayloadError, parse_notification
from depmirror.runner.readiness import ReadinessChecks
from depmirror.runner.roster import Roster, RosterSource
from depmirror.runner.store_caller import StoreCaller
from depmirror.runner.zones import ZoneService
from depmirror.store.filters import FilterError, build_filter
from depmirror.store.model import Event, QueuedAlert, utcnow

log = logging.getLogger("depmirror.runner")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# /api/ checks its own tokens and scopes (runner/api/auth.py); the webhook credentials still read there.
PROTECTED_PREFIXES = ("/alertmanager",)

CONFIG_KEY = web.AppKey("config", RunnerConfig)
DB_KEY = web.AppKey("db", StoreCaller)
METRICS_KEY = web.AppKey("metrics", RunnerMetrics)
WAKE_KEY: web.AppKey[Callable[[], None]] = web.AppKey("wake")
READY_KEY: web.AppKey[Callable[[], bool]] = web.AppKey("ready")
ROSTER_KEY = web.AppKey("roster", RosterSource)
CHECKS_KEY = web.AppKey("checks", ReadinessChecks)
# The zonal shift service (runner/zones.py); None when the config names no graph.
ZONES_KEY: web.AppKey[ZoneService | None] = web.AppKey("zones")
# /readyz answers within this, whatever the store or AWX is doing: a probe that hangs is a probe that lies.
READY_DEADLINE_S = 0.9


def build_app(
    config: RunnerConfig,
    db: StoreCaller,
    metrics: RunnerMetrics,
    wake: Callable[[], None],
    ready: Callable[[], bool],
    *,
    action_problems: Callable[[], Awaitable[list[str]]] | None = None,
    zones: ZoneService | None = None,
) -> web.Application:
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[_errors_middleware(metrics), _auth_middleware(config.auth, metrics)],
    )
    app[CONFIG_KEY] = config
    app[DB_KEY] = db
    app[METRICS_KEY] = metrics
    app[WAKE_KEY] = wake
    app[READY_KEY] = ready
    app[ROSTER_KEY] = RosterSource(config.placed, db)
    app[CHECKS_KEY] = ReadinessChecks(db, action_problems)
    app[ZONES_KEY] = zones
    app.router.add_post("/alertmanager", receive_alerts)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/api/v1/events", list_events)
    api_routes.mount(
        app, config, db, metrics, wake, webhook_ok=authorized, graph=zones.graph if zones is not None else None
    )
    return app


def _json_error(status: int, reason: str, **headers: str) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


def _errors_middleware(metrics: RunnerMetrics) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            metrics.requests_rejected.labels("413").inc()
            return _json_error(413, f"body larger than {request.app[CONFIG_KEY].max_body_bytes} bytes")
        except web.HTTPException:
            raise
        except Exception:
            # Input never gets here (payload errors are 400s); this is the store or a bug. 503 makes
            # Alertmanager retry later instead of dropping the notification.
            log.exception("request %s %s failed", request.method, request.path)
            metrics.requests_rejected.labels("503").inc()
            return _json_error(503, "the runner cannot persist right now; retry")

    return middleware


def _auth_middleware(auth: AuthConfig, metrics: RunnerMetrics) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            auth.type != "none"
            and request.path.startswith(PROTECTED_PREFIXES)
            and not authorized(auth, request.headers.get("Authorization", ""))
        ):
            metrics.requests_rejected.labels("401").inc()
            challenge = 'Bearer realm="depmirror"' if auth.type == "bearer" else 'Basic realm="depmirror"'
            return _json_error(401, "missing or wrong credentials", **{"WWW-Authenticate": challenge})
        return await handler(request)

    return middleware


def _same(given: str, expected: str) -> bool:
    # compare_digest on bytes: it is constant-time and, unlike on str, accepts non-ASCII input.
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def authorized(auth: AuthConfig, header: str) -> bool:
    """Whether an Authorization header carries `auth`'s credentials (also the EDA event source's check)."""
    scheme, _, credentials = header.partition(" ")
    if auth.type == "bearer":
        return scheme.lower() == "bearer" and _same(credentials.strip(), auth.token)
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    username, separator, password = decoded.partition(":")
    # Both comparisons always run, so timing does not tell which half was wrong.
    user_ok = _same(username, auth.username)
    password_ok = _same(password, auth.password)
    return bool(separator) and user_ok and password_ok


async def receive_alerts(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    metrics = request.app[METRICS_KEY]
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        metrics.requests_rejected.labels("413").inc()
        return _json_error(413, f"body larger than {config.max_body_bytes} bytes")
    body = await request.read()
    try:
        notification = parse_notification(body)
    except PayloadError as error:
        metrics.requests_rejected.labels("400").inc()
        return _json_error(400, str(error))
    db = request.app[DB_KEY]
    roster = await request.app[ROSTER_KEY].current()
    zones = request.app[ZONES_KEY]
    # Zone alerts name a zone, not a dependency: screened and acted on by the zonal shift service.
    intake = zones.split(notification) if zones is not None else None
    alerts = _queued_alerts(notification if intake is None else intake.rest, config, roster)
    if intake is not None:
        alerts.extend(intake.ignored)
    now = utcnow()

    def ignored_event(group: Sequence[QueuedAlert], reason: str) -> Event:
        return decision_event(
            "alert_ignored", group, runner_id=config.runner_id, now=now, decision="ignore", reason=reason
        )

    result = await db(db.store.enqueue, alerts, ignored_event)
    zone_queued = await zones.receive(intake.valid, notification.group_key) if zones and intake and intake.valid else 0
    for alert in notification.alerts:
        metrics.alerts_received.labels(alert.status).inc()
    metrics.alerts_deduplicated.inc(result.duplicates)
    request.app[WAKE_KEY]()
    ignored = sum(1 for alert in alerts if alert.ignore_reason is not None)
    return web.json_response(
        {
            "status": "accepted",
            "queued": result.queued + zone_queued,
            "duplicates": result.duplicates + (len(intake.valid) - zone_queued if intake else 0),
            "ignored": ignored,
        },
        status=202,
    )


def _queued_alerts(notification: Notification, config: RunnerConfig, roster: Roster) -> list[QueuedAlert]:
    now = utcnow()
    hold = timedelta(seconds=config.policy.failback_hold_s if config.policy.failback else 0)
    queued = []
    for alert in notification.alerts:
        dependency = alert.labels.get(config.dependency_label, "")
        instance = alert.labels.get(config.instance_label, "")
        unknown = roster.reason(
            dependency, instance, dependency_label=config.dependency_label, instance_label=config.instance_label
        )
        reason = unknown or policy.action_label_reason(alert.labels)
        queued.append(
            QueuedAlert(
                fingerprint=alert.fingerprint,
                starts_at=alert.starts_at,
                status="firing" if alert.status == "firing" else "resolved",
                # Unchecked label text never names a dependency or instance in the queue or history.
                dependency=dependency if dependency in config.dependencies else "",
                instance=instance if unknown is None else "",
                labels=alert.labels,
                annotations=alert.annotations,
                group_key=notification.group_key,
                received_at=now,
                # A resolved alert waits out the failback hold in the queue, so a restart keeps the hold.
                not_before=now + hold if alert.status == "resolved" else now,
                ignore_reason=reason,
            )
        )
    return queued


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if not request.app[READY_KEY]():
        return _json_error(503, "starting: recovering interrupted actions")
    try:
        problems = await asyncio.wait_for(request.app[CHECKS_KEY].problems(), READY_DEADLINE_S)
    except TimeoutError:
        return _json_error(503, f"the store did not answer a write check within {READY_DEADLINE_S}s")
    if problems:
        return _json_error(503, "; ".join(problems))
    return web.json_response({"status": "ready"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics = request.app[METRICS_KEY]
    db = request.app[DB_KEY]
    try:
        metrics.queue_depth.set(await db(db.store.queue_depth))
    except Exception:
        log.warning("queue depth unavailable for /metrics", exc_info=True)
    response = web.Response(body=generate_latest(metrics.registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def list_events(request: web.Request) -> web.Response:
    query = request.query
    try:
        limit = int(query.get("limit", "100"))
        event_filter = build_filter(
            utcnow(),
            dependency=query.get("dependency"),
            kinds=query.getall("kind", []),
            since=query.get("since"),
            limit=limit,
        )
    except (FilterError, ValueError) as error:
        return _json_error(400, str(error))
    db = request.app[DB_KEY]
    events = await db(db.store.events, event_filter)
    return web.json_response({"events": [event.as_dict() for event in events]})
