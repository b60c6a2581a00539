"""What the store holds, as plain values: history events, state, RF decisions and queued alerts.

Nothing here knows about SQLite: a PostgreSQL backend stores and returns the same dataclasses.
Times are timezone-aware UTC datetimes everywhere in the interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

# Every kind of event the rollback history knows. `refused` and `interrupted` name the action they
# concern in Event.action; the alert_* kinds record what the runner did with alerts it did not act on.
EVENT_KINDS: tuple[str, ...] = (
    "rollback",
    "failback",
    "rf_change",
    "refused",
    "interrupted",
    "alert_ignored",
    "alert_suppressed",
)
EventKind = Literal["rollback", "failback", "rf_change", "refused", "interrupted", "alert_ignored", "alert_suppressed"]

# Outcomes are open-ended text so that playbooks can report their own, but these are the ones depmirror
# writes: succeeded/failed (an action ran), shadow (decided, not run), refused, ignored, suppressed,
# interrupted (the process died mid-action), superseded (an interrupted action turned out to be done).
OUTCOMES: tuple[str, ...] = (
    "succeeded",
    "failed",
    "shadow",
    "refused",
    "ignored",
    "suppressed",
    "interrupted",
    "superseded",
)

AlertStatus = Literal["firing", "resolved"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the rollback history. `id` is assigned by the store and grows with every append."""

    kind: str
    dependency: str
    outcome: str
    time: datetime = field(default_factory=utcnow)
    instance: str | None = None
    target: str | None = None
    action: str | None = None
    trigger: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    decision: str = ""
    reason: str = ""
    duration_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time.isoformat(),
            "kind": self.kind,
            "dependency": self.dependency,
            "instance": self.instance,
            "target": self.target,
            "action": self.action,
            "trigger": self.trigger,
            "inputs": self.inputs,
            "decision": self.decision,
            "reason": self.reason,
            "outcome": self.outcome,
            "duration_s": self.duration_s,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to read; every field narrows the result, None means any. Newest first."""

    dependency: str | None = None
    kinds: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    instance: str | None = None
    limit: int | None = 100
    after_id: int | None = None


@dataclass(frozen=True, slots=True)
class RfChange:
    """A replication factor the store recorded for a dependency (when `adjust` applied it): the history of RF
    changes. The planner's hysteresis memory is `depmirror.planner.state.RfDecision`."""

    dependency: str
    rf: int
    time: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class QueuedAlert:
    """One alert from an Alertmanager webhook, waiting in (or done with) the runner's durable queue.

    (fingerprint, starts_at, status) is the dedup key: Alertmanager resends the same alert on every group
    flush and after its own restarts, and each resend must act at most once.
    """

    fingerprint: str
    starts_at: str
    status: AlertStatus
    dependency: str
    instance: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    received_at: datetime = field(default_factory=utcnow)
    not_before: datetime | None = None
    group_key: str = ""
    retry_of: str | None = None
    attempts: int = 0
    id: int | None = None
    # Set at intake when the labels do not name a known dependency and instance: stored as done, never acted on.
    ignore_reason: str | None = None
    # Earlier pending notifications of the same alert that this one, the newest, stands for when read.
    covered_ids: tuple[int, ...] = ()

    @property
    def queue_ids(self) -> tuple[int, ...]:
        """The queue rows that settle with this alert."""
        if self.covered_ids:
            return self.covered_ids
        return () if self.id is None else (self.id,)

    def trigger(self) -> dict[str, Any]:
        return {
            "type": "alert",
            "fingerprint": self.fingerprint,
            "starts_at": self.starts_at,
            "status": self.status,
            "alertname": self.labels.get("alertname", ""),
            "queue_id": self.id,
            "received_at": self.received_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    queued: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """An action the runner started and has not finished: the journal that makes kill -9 visible."""

    action_id: str
    kind: str
    dependency: str
    instance: str
    runner_id: str
    started_at: datetime
    queue_ids: tuple[int, ...]
    external_id: str | None = None
    trigger: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
