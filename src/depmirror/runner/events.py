"""The layout of the runner's history events: one place builds them, for the intake and the worker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from depmirror.runner.health import HealthView
from depmirror.store.model import Event, QueuedAlert

MAX_FINGERPRINTS_IN_EVENT = 50
DEFAULT_OUTCOMES = {"alert_ignored": "ignored", "alert_suppressed": "suppressed", "refused": "refused"}


def trigger(alerts: Sequence[QueuedAlert], runner_id: str) -> dict[str, Any]:
    newest = alerts[-1]
    described = newest.trigger()
    described["runner_id"] = runner_id
    described["alerts"] = sum(max(1, len(a.queue_ids)) for a in alerts)
    described["fingerprints"] = sorted({a.fingerprint for a in alerts})[:MAX_FINGERPRINTS_IN_EVENT]
    return described


def health_inputs(view: HealthView | None) -> dict[str, Any]:
    if view is None:
        return {}
    return {
        "health_source": view.source,
        "failed_instance": view.failed_instance,
        "candidates": view.candidates,
        **view.inputs,
    }


def decision_event(
    kind: str,
    alerts: Sequence[QueuedAlert],
    *,
    runner_id: str,
    now: datetime,
    decision: str,
    reason: str,
    action: str | None = None,
    view: HealthView | None = None,
    outcome: str | None = None,
    details: dict[str, Any] | None = None,
) -> Event:
    newest = alerts[-1]
    return Event(
        kind=kind,
        dependency=newest.dependency or "-",
        instance=newest.instance or None,
        action=action,
        time=now,
        trigger=trigger(alerts, runner_id),
        inputs=health_inputs(view) if view is not None else {"labels": newest.labels},
        decision=decision,
        reason=reason,
        outcome=outcome or DEFAULT_OUTCOMES.get(kind, kind),
        details=details or {},
    )
