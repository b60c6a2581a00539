"""What the store holds, as plain values: history events, state, RF decisions and queued alerts.

Nothing here knows about SQLite: a PostgreSQL backend stores and returns the same dataclasses.
Times are timezone-aware UTC datetimes everywhere in the interface.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    "zonal_shift",
    "zonal_shift_end",
    "override",
    "override_end",
    "reconcile",  # the runner's reconciliation launched (or held, or shadowed) an adjust: runner/reconcile.py
)
EventKind = Literal[
    "rollback",
    "failback",
    "rf_change",
    "refused",
    "interrupted",
    "alert_ignored",
    "alert_suppressed",
    "zonal_shift",
    "zonal_shift_end",
    "override",
    "override_end",
    "reconcile",
]

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
    "held",  # reconciliation left a change alone (an override keeps its hands off)
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
class PassState:
    """What the runner's dispatch pass reads once for every dependency it decides (`Store.pass_state`):
    the primaries, each dependency's last action that could start (the cooldown's input) and the
    notifications of each alert since the flap window began (flapping's input)."""

    primaries: dict[str, str] = field(default_factory=dict)
    last_actions: dict[str, Event] = field(default_factory=dict)
    transitions: dict[str, int] = field(default_factory=dict)
    # The zonal shifts active at `shifts_at`, when the pass asked (a shift's items wait): tells a shift's
    # item from an alert that merely carries its name.
    shifts: tuple[ZonalShift, ...] = ()

    def most_transitions(self, fingerprints: Iterable[str]) -> int:
        """As `Store.alert_transitions`: the most state changes one of these alerts had."""
        return max((self.transitions.get(fingerprint, 0) for fingerprint in fingerprints), default=0)


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


@dataclass(frozen=True, slots=True)
class ZonalShift:
    """Traffic moved away from a zone, by an operator or the runner, always with an expiry.

    Active at t while started_ts <= t < expires_ts and it has not ended (ended_ts unset or later than t).
    `id` is assigned by the store."""

    zone: str
    reason: str
    created_by: str
    started_ts: datetime
    expires_ts: datetime
    ended_ts: datetime | None = None
    end_reason: str | None = None
    id: int | None = None

    def active_at(self, when: datetime) -> bool:
        return self.started_ts <= when < self.expires_ts and (self.ended_ts is None or when < self.ended_ts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "zone": self.zone,
            "reason": self.reason,
            "created_by": self.created_by,
            "started_ts": self.started_ts.isoformat(),
            "expires_ts": self.expires_ts.isoformat(),
            "ended_ts": None if self.ended_ts is None else self.ended_ts.isoformat(),
            "end_reason": self.end_reason,
        }


# What an override may say about rollback: act on alerts (auto), ask a person (manual), decide and record
# without acting (shadow), hold every alert back and record what would have been done (frozen).
ROLLBACK_MODES: tuple[str, ...] = ("auto", "manual", "shadow", "frozen")
# The dependency an override names to apply to every dependency.
EVERY_DEPENDENCY = "*"


@dataclass(frozen=True, slots=True)
class Override:
    """A run-time policy change for one dependency (or every one: "*"), with who, why and an expiry.

    A field left None is not overridden. Active at t like a ZonalShift (created_ts <= t < expires_ts, not
    ended). `id` is assigned by the store."""

    dependency: str
    rf_min: int | None
    rf_max: int | None
    unhealthy: float | None
    rollback: str | None
    reason: str
    created_by: str
    created_ts: datetime
    expires_ts: datetime
    ended_ts: datetime | None = None
    end_reason: str | None = None
    id: int | None = None

    def active_at(self, when: datetime) -> bool:
        return self.created_ts <= when < self.expires_ts and (self.ended_ts is None or when < self.ended_ts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dependency": self.dependency,
            "rf_min": self.rf_min,
            "rf_max": self.rf_max,
            "unhealthy": self.unhealthy,
            "rollback": self.rollback,
            "reason": self.reason,
            "created_by": self.created_by,
            "created_ts": self.created_ts.isoformat(),
            "expires_ts": self.expires_ts.isoformat(),
            "ended_ts": None if self.ended_ts is None else self.ended_ts.isoformat(),
            "end_reason": self.end_reason,
        }
