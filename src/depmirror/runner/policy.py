"""The runner's rules, as small pure functions over what the store and the health check returned.

Order of the checks for a firing alert (docs/runner.md, "How the runner decides"):
ignore (not ours) -> not the primary -> cooldown -> flapping -> health re-check -> shadow or act.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from depmirror.runner.config import PolicyConfig, RunnerConfig
from depmirror.runner.health import HealthView
from depmirror.store.model import Event, QueuedAlert

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
    """Never fail over to an unhealthy or unknown target; never act on an alert the instance outgrew."""
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


def judge_failback_health(view: HealthView) -> PolicyVerdict:
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
