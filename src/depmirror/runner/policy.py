"""The runner's rules, as small pure functions over what the store and the health check returned.

Order of the checks for a firing alert (docs/runner.md, "How the runner decides"):
ignore (not ours) -> not the primary -> cooldown -> flapping -> health re-check -> shadow or act.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from depmirror.fleet.history_stats import HELD_PREFIX, host_of
from depmirror.health.checker import UNHEALTHY_BELOW
from depmirror.runner.api.book import OverrideBook
from depmirror.runner.config import PolicyConfig, RunnerConfig
from depmirror.runner.health import HealthView
from depmirror.store.model import Event, QueuedAlert, utcnow

# The Prometheus label the alert rules carry to say what the runner may do (issue 7): absent or
# `rollback` lets the runner act; any other value (e.g. `notify`) is recorded and ignored.
ACTION_LABEL = "action"
ACTIONABLE = ("", "rollback")
# DepmirrorInstanceDown says `adjust`: the rules only know the role Prometheus's targets were labelled with.
# After a switchover that label is stale until the monitoring targets are rendered again, so a down
# "mirror" that the store records as the primary is a primary down.
ACTIONABLE_IF_PRIMARY = ("adjust",)


def ignore_reason(alert: QueuedAlert, config: RunnerConfig, is_primary: bool = False) -> str | None:
    """Why an alert is not the runner's business, or None if it is. `is_primary`: the store records the
    alert's instance as its dependency's primary."""
    _remember(alert, config)
    if not alert.dependency:
        return f"no {config.dependency_label!r} label"
    if alert.dependency not in config.dependencies:
        return f"unknown dependency {alert.dependency!r} (not in the graph)"
    if not alert.instance:
        return f"no {config.instance_label!r} label"
    action = alert.labels.get(ACTION_LABEL, "")
    if action not in ACTIONABLE and not (is_primary and action in ACTIONABLE_IF_PRIMARY):
        return f"action label is {action!r}, not rollback"
    return None


def action_label_reason(labels: dict[str, str]) -> str | None:
    """At intake: an `action` label that no store state could make actionable (e.g. `notify`)."""
    action = labels.get(ACTION_LABEL, "")
    if action in ACTIONABLE or action in ACTIONABLE_IF_PRIMARY:
        return None
    return f"action label is {action!r}, not rollback"


@dataclass(frozen=True, slots=True)
class PolicyVerdict:
    """`act` true: go (or shadow); otherwise `kind` is the event to record and `reason` says why."""

    act: bool
    kind: str = ""
    reason: str = ""
    candidates: tuple[str, ...] = ()


def in_cooldown(last_action: Event | None, now: datetime, policy: PolicyConfig) -> str | None:
    if last_action is None:
        return None
    elapsed = (now - last_action.time).total_seconds()
    if elapsed < policy.cooldown_s:
        return (
            f"cooldown: {last_action.kind} #{last_action.id} {elapsed:.0f}s ago "
            f"(cooldown_seconds {policy.cooldown_s:.0f})"
        )
    return None


def flapping(transitions: int, policy: PolicyConfig) -> str | None:
    if transitions >= policy.flap_max_transitions:
        return (
            f"flapping: {transitions} alert state changes in {policy.flap_window_s:.0f}s "
            f"(flap_max_transitions {policy.flap_max_transitions})"
        )
    return None


def flap_since(now: datetime, policy: PolicyConfig) -> datetime:
    return now - timedelta(seconds=policy.flap_window_s)


def judge_rollback_health(view: HealthView, policy: PolicyConfig) -> PolicyVerdict:
    """Never fail over to an unhealthy or unknown target; never act on an alert the instance outgrew; hold
    back what the overrides in force hold back (`with_overrides`)."""
    deciding = _DECIDING.get()
    if deciding is not None and (deciding.manual or deciding.deliberate) and view.failed_instance == "healthy":
        # An operator's switchover, or a zonal shift the store holds active, moves a healthy primary on
        # purpose (maintenance, a rehearsal, a zone drill).
        view = dataclasses.replace(view, failed_instance="unknown")
    return with_overrides("rollback", _rollback_health(view, policy))


def judge_failback_health(view: HealthView) -> PolicyVerdict:
    return with_overrides("failback", _failback_health(view))


def _rollback_health(view: HealthView, policy: PolicyConfig) -> PolicyVerdict:
    if view.failed_instance == "healthy":
        return PolicyVerdict(act=False, kind="refused", reason="the alerting instance is healthy again")
    if view.candidates:
        targets = view.healthy_targets()
        if not targets:
            seen = ", ".join(f"{name}={verdict}" for name, verdict in sorted(view.candidates.items()))
            return PolicyVerdict(act=False, kind="refused", reason=f"no healthy target ({seen})")
        return PolicyVerdict(act=True, candidates=tuple(targets))
    if policy.on_unknown_health == "delegate":
        # The playbook picks the target from live health and refuses unknown ones itself.
        return PolicyVerdict(act=True, reason="target health unknown here; the playbook chooses and verifies")
    return PolicyVerdict(
        act=False,
        kind="refused",
        reason=f"target health unknown (checker: {view.source}); policy.on_unknown_health is refuse",
    )


def _failback_health(view: HealthView) -> PolicyVerdict:
    if view.failed_instance != "healthy":
        return PolicyVerdict(
            act=False, kind="refused", reason=f"the recovered instance is {view.failed_instance}, not healthy"
        )
    return PolicyVerdict(act=True)


def by_instance(alerts: Sequence[QueuedAlert]) -> dict[str, list[QueuedAlert]]:
    """Alerts grouped by instance in arrival order (each the newest notification of its own alert)."""
    groups: dict[str, list[QueuedAlert]] = {}
    for alert in sorted(alerts, key=lambda a: a.id or 0):
        groups.setdefault(alert.instance, []).append(alert)
    return groups


# --- overrides: the rollback mode in force (auto | manual | shadow | frozen) ---------------------------
# The worker decides one dependency per asyncio task and asks `ignore_reason` about each of its alerts
# before judging health; what the judging needs to know of them (which dependency, whether an operator's
# switchover is among them and to which target) is kept for the task here, since the health verdict
# functions are handed only the health view. Each task has its own copy of a context variable.
MANUAL_ALERTNAME = "DepmirrorSwitchover"
TARGET_LABEL = "depmirror_target"
MANUAL_PREFIX = "switchover-"
_BOOKS: dict[int, tuple[RunnerConfig, OverrideBook]] = {}


@dataclass(slots=True)
class _Deciding:
    dependency: str
    book: OverrideBook | None
    manual: bool = False
    target: str = ""
    seen: set[str] = field(default_factory=set)
    # A queue item of a zonal shift the store holds active (runner/worker.py checks the store): it moves a
    # healthy primary too, but passes no override that holds alerts back (unlike `manual`).
    deliberate: bool = False


_DECIDING: contextvars.ContextVar[_Deciding | None] = contextvars.ContextVar("depmirror_deciding", default=None)


def register_book(config: RunnerConfig, book: OverrideBook) -> None:
    """Make `book` the overrides the decisions of the runner configured by `config` read."""
    _BOOKS[id(config)] = (config, book)


def _book(config: RunnerConfig) -> OverrideBook | None:
    entry = _BOOKS.get(id(config))
    return entry[1] if entry is not None and entry[0] is config else None


def _signing_key(config: RunnerConfig) -> bytes:
    # Every runner of one fleet has the same secrets (one config): any of them checks what another signed.
    return hashlib.sha256("\0".join(("depmirror-switchover", *sorted(config.secrets()))).encode()).digest()


def manual_fingerprint(config: RunnerConfig, dependency: str, nonce: str, target: str, requested_by: str) -> str:
    """The fingerprint of an operator's switchover in the queue, `switchover-WHO-NONCE-MAC`: signed, so that no
    alert from Alertmanager (whose text anyone who controls a scraped label writes) can pass for one, and
    naming who asked, since the history's trigger keeps the fingerprint."""
    message = f"{dependency}\0{requested_by}\0{nonce}\0{target}".encode("utf-8", "replace")
    mac = hmac.new(_signing_key(config), message, hashlib.sha256).hexdigest()[:32]
    return f"{MANUAL_PREFIX}{requested_by}-{nonce}-{mac}"


def is_manual(alert: QueuedAlert, config: RunnerConfig) -> bool:
    if not alert.fingerprint.startswith(MANUAL_PREFIX):
        return False
    rest, _, _mac = alert.fingerprint.removeprefix(MANUAL_PREFIX).rpartition("-")
    requested_by, _, nonce = rest.rpartition("-")
    target = alert.labels.get(TARGET_LABEL, "")
    expected = manual_fingerprint(config, alert.dependency, nonce, target, requested_by)
    return hmac.compare_digest(expected.encode("utf-8", "replace"), alert.fingerprint.encode("utf-8", "replace"))


def _remember(alert: QueuedAlert, config: RunnerConfig) -> None:
    deciding = _DECIDING.get()
    if deciding is None or deciding.dependency != alert.dependency or alert.fingerprint in deciding.seen:
        deciding = _Deciding(dependency=alert.dependency, book=_book(config))
        _DECIDING.set(deciding)
        use_threshold(deciding.book, alert.dependency)
    deciding.seen.add(alert.fingerprint)
    if alert.status == "firing" and is_manual(alert, config):
        deciding.manual = True
        deciding.target = alert.labels.get(TARGET_LABEL, "")


def mark_deliberate(dependency: str) -> None:
    """The alerts of `dependency` being decided in this task include a zonal shift's item that the store
    holds active: a healthy primary is moved all the same (a drill, an operator's `zone shift`)."""
    deciding = _DECIDING.get()
    if deciding is not None and deciding.dependency == dependency:
        deciding.deliberate = True


def use_threshold(book: OverrideBook | None, dependency: str, now: datetime | None = None) -> None:
    """Make an `unhealthy` override in force for `dependency` (its own, else `*`'s) the threshold of the
    health re-checks that follow in this task (health/checker.py)."""
    setting = None if book is None else book.settings(dependency, now or utcnow()).get("unhealthy")
    UNHEALTHY_BELOW.set(None if setting is None else (dependency, float(setting[0])))


def rollback_mode(book: OverrideBook | None, dependency: str, now: datetime) -> tuple[str, Any]:
    """The rollback mode in force for `dependency` and the override that sets it (None: the config's)."""
    if book is None:
        return "auto", None
    setting = book.settings(dependency, now).get("rollback")
    return ("auto", None) if setting is None else setting


def held_reason(mode: str, override: Any, would: str) -> str:
    return (
        f"{HELD_PREFIX} #{override.id} (rollback {mode}, by {override.created_by}: {override.reason}; "
        f"until {override.expires_ts.isoformat()}): would {would}"
    )


def _would(action: str, verdict: PolicyVerdict) -> str:
    if not verdict.act:
        return f"refuse the {action}: {verdict.reason}"
    if verdict.candidates:
        return f"{action} to {' or '.join(verdict.candidates)}"
    return f"{action} ({verdict.reason})"


def with_overrides(action: str, verdict: PolicyVerdict, now: datetime | None = None) -> PolicyVerdict:
    """The verdict once the overrides in force have their say: `frozen`, `shadow` and `manual` hold every
    alert back and record what would have been done; an operator's switchover passes `manual` (and goes to
    its target, if it names one and that target is healthy), never `frozen`."""
    deciding = _DECIDING.get()
    if deciding is None:
        return verdict
    mode, override = rollback_mode(deciding.book, deciding.dependency, now or utcnow())
    manual = deciding.manual and action == "rollback"
    if manual and deciding.target and verdict.act:
        wanted = host_of(deciding.target)
        chosen = tuple(c for c in verdict.candidates if host_of(c) == wanted)
        if verdict.candidates and not chosen:
            return PolicyVerdict(
                act=False,
                kind="refused",
                reason=f"the switchover's target {deciding.target} is not a healthy candidate "
                f"({', '.join(verdict.candidates) or 'none'} are)",
            )
        verdict = PolicyVerdict(act=True, reason=verdict.reason, candidates=chosen or verdict.candidates)
    if mode == "auto" or (manual and mode == "manual"):
        return verdict
    return PolicyVerdict(act=False, kind="refused", reason=held_reason(mode, override, _would(action, verdict)))


def preview_switchover(
    book: OverrideBook | None, dependency: str, target: str, view: HealthView, policy: PolicyConfig
) -> PolicyVerdict:
    """What the worker will decide for an operator's switchover of `dependency` (the API's dry run)."""
    token = _DECIDING.set(_Deciding(dependency=dependency, book=book, manual=True, target=target))
    try:
        return judge_rollback_health(view, policy)
    finally:
        _DECIDING.reset(token)
