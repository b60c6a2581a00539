"""The store interface: rollback history, state, and the runner's durable alert queue.

Every backend implements `Store`. The contract a backend must keep (SQLite now, PostgreSQL later):
- Each method is one transaction; when it returns, what it wrote is durable (fsynced), so a caller may
  acknowledge it (the runner answers 202, the module reports `changed`).
- The history is append-only: nothing updates or deletes an event; ids grow with every append.
- Several processes may write at once (runners, playbooks run by AWX, `depmirror` commands).
- Arguments and results are the dataclasses of `depmirror.store.model` and plain JSON-able values; no
  connection, cursor or row object ever crosses this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from depmirror.errors import DepmirrorError
from depmirror.store.model import (
    ActionRecord,
    EnqueueResult,
    Event,
    EventFilter,
    Override,
    PassState,
    QueuedAlert,
    RfChange,
    ZonalShift,
)

# Builds the event that records alerts refused at intake, one per reason.
IgnoredEvent = Callable[[Sequence[QueuedAlert], str], Event]
# Enough identities of one dependency for a decision (its instances times its alert rules), few enough
# that one dependency's storm never fills a read.
PENDING_PER_DEPENDENCY = 100
# Row counts `stats` reports, the same queries on both backends.
STATS_QUERIES = (
    ("events", "SELECT count(*) FROM events"),
    ("primaries", "SELECT count(*) FROM primaries"),
    ("applied_plans", "SELECT count(*) FROM applied_plan"),
    ("rf_changes", "SELECT count(*) FROM rf_decisions"),
    ("alerts_waiting", "SELECT count(*) FROM alert_queue WHERE state != 'done'"),
    ("alerts_decided", "SELECT count(*) FROM alert_queue WHERE state = 'done'"),
    ("open_actions", "SELECT count(*) FROM actions WHERE finished_ts IS NULL"),
    ("zonal_shifts", "SELECT count(*) FROM zonal_shifts"),
    ("overrides", "SELECT count(*) FROM overrides"),
)
# Builds the history event recorded with a zonal shift or an override, in the same transaction.
ShiftEvent = Callable[[ZonalShift], Event]
OverrideEvent = Callable[[Override], Event]


class StoreError(DepmirrorError):
    """The store cannot be opened or used (not bad user input: that is ConfigError).

    Names the file (or URL), what is wrong and the fix, so the CLI prints it as one line and exits 2.
    """

    def __init__(self, file: str, problem: str, fix: str = "") -> None:
        self.file = file
        self.problem = problem
        self.fix = fix
        text = f"{file}: {problem}"
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)


class StoreConflict(StoreError):
    """A write refused because of what the store holds now (a zone already shifted, too many shifts): the
    store decides, so that two runners racing on one alert start one shift."""

    def __init__(self, file: str, problem: str, fix: str = "", *, existing: ZonalShift | None = None) -> None:
        super().__init__(file, problem, fix)
        self.existing = existing


class Store(ABC):
    """One history + state + queue, shared by everything that reads or writes depmirror's truth."""

    url: str

    # --- rollback history -------------------------------------------------------------------------
    @abstractmethod
    def append_event(self, event: Event) -> Event:
        """Append one event durably; returns it with `id` set."""

    @abstractmethod
    def events(self, query: EventFilter | None = None) -> list[Event]:
        """Events matching `query`, newest first."""

    # --- state ------------------------------------------------------------------------------------
    @abstractmethod
    def primary(self, dependency: str) -> str | None:
        """The instance that is primary for `dependency` now, or None if no rollback or adjust said."""

    @abstractmethod
    def primaries(self) -> dict[str, str]: ...

    @abstractmethod
    def set_primary(self, dependency: str, instance: str) -> None: ...

    @abstractmethod
    def applied_plan(self) -> dict[str, Any] | None:
        """The last plan `adjust` applied, as the JSON object it was stored as."""

    @abstractmethod
    def set_applied_plan(self, plan: dict[str, Any]) -> None: ...

    @abstractmethod
    def record_rf_change(self, decision: RfChange) -> None: ...

    @abstractmethod
    def rf_changes(self, dependency: str | None = None, since: datetime | None = None) -> list[RfChange]:
        """RF decisions oldest first: the planner's hysteresis reads the recent ones."""

    # --- the runner's durable alert queue ---------------------------------------------------------
    @abstractmethod
    def enqueue(self, alerts: Sequence[QueuedAlert], ignored: IgnoredEvent | None = None) -> EnqueueResult:
        """Queue alerts not seen before (by fingerprint + startsAt + status); count the rest.

        Alerts with an `ignore_reason` are stored as decided, and `ignored(alerts, reason)` builds the one
        event per reason that records them, in the same transaction."""

    @abstractmethod
    def pending(self, now: datetime, per_dependency: int = PENDING_PER_DEPENDENCY) -> list[QueuedAlert]:
        """Queued alerts not yet decided whose not_before has passed, oldest first, collapsed: one row per
        alert (dependency, instance, fingerprint), the newest, standing for the older ones (`covered_ids`);
        at most `per_dependency` alerts of one dependency, so that no backlog hides another's alerts."""

    @abstractmethod
    def queue_depth(self) -> int:
        """Alerts queued and not yet decided (including those acting now)."""

    @abstractmethod
    def settle(self, queue_ids: Sequence[int], event: Event | None) -> Event | None:
        """Mark queued alerts decided without an action, appending `event` in the same transaction."""

    @abstractmethod
    def begin_action(self, record: ActionRecord) -> None:
        """Journal an action as started and tie its queued alerts to it, before the action runs."""

    @abstractmethod
    def set_action_external_id(self, action_id: str, external_id: str) -> None:
        """Remember e.g. the AWX job id, so a restart can follow the job instead of launching again."""

    @abstractmethod
    def finish_action(self, action_id: str, event: Event) -> Event:
        """Append the action's event, close its journal entry and settle its alerts, atomically."""

    @abstractmethod
    def unfinished_actions(self, runner_id: str) -> list[ActionRecord]:
        """Actions `runner_id` started and never finished, oldest first."""

    @abstractmethod
    def recover_interrupted(
        self,
        runner_id: str,
        now: datetime,
        notes: Mapping[str, dict[str, Any]] | None = None,
        *,
        only: Collection[str] | None = None,
    ) -> list[tuple[ActionRecord, Event]]:
        """Close every action `runner_id` started and never finished (the process died); with `only`, just
        those action ids (another runner taking over one dependency).

        Appends an `interrupted` event per action (with `notes[action_id]` in its details: what the
        orphaned run had done) and puts its alerts back in the queue with `retry_of` set, so the runner
        re-evaluates them instead of running them again blindly.
        """

    @abstractmethod
    def latest_alert(self, dependency: str, instance: str) -> QueuedAlert | None:
        """The most recently received alert for this instance, decided or not."""

    @abstractmethod
    def firing_alerts(self, dependency: str, instance: str) -> list[str]:
        """Fingerprints of this instance's alerts whose latest notification says firing."""

    @abstractmethod
    def applied_plan_stamp(self) -> float | None:
        """When the applied plan was last recorded (cheap: tells a reader whether to read it again)."""

    @abstractmethod
    def alert_transitions(self, fingerprints: Sequence[str], since: datetime) -> int:
        """The most state changes (firing/resolved by startsAt) one of these alerts had since `since`."""

    @abstractmethod
    def pass_state(
        self,
        dependencies: Collection[str],
        fingerprints: Collection[str],
        since: datetime,
        lookback: int,
        shifts_at: datetime | None = None,
    ) -> PassState:
        """In one read, what the runner's dispatch pass decides its dependencies on: every primary; for each
        of `dependencies`, its newest `rollback` or `failback` event whose outcome is not `error`, among its
        `lookback` newest events of those kinds; for each of `fingerprints`, the state changes its alert had
        since `since` (counted as `alert_transitions` counts them); with `shifts_at`, the zonal shifts
        active then (as `zonal_shifts(active_at=shifts_at)`)."""

    @abstractmethod
    def prune_queue(self, before: datetime) -> int:
        """Forget decided alerts received before `before` (history events stay forever)."""

    # --- zonal shifts -----------------------------------------------------------------------------
    @abstractmethod
    def start_zonal_shift(
        self, shift: ZonalShift, *, max_active: int | None = None, event: ShiftEvent | None = None
    ) -> ZonalShift:
        """Record a shift that starts at `shift.started_ts`; returns it with `id` set.

        Raises StoreConflict when the zone already has a shift active at its start, or when `max_active`
        shifts (of other zones) are active then: one transaction decides, so racing runners start one.
        A shift of the zone that is still open but expired by then is ended first (end_reason "expired",
        at its expiry). A shift given with `ended_ts` set is stored as history (`store copy`), unchecked.
        `event(shift)` is appended to the history in the same transaction."""

    @abstractmethod
    def zonal_shifts(self, active_at: datetime | None = None) -> list[ZonalShift]:
        """Shifts active at `active_at`, or every shift ever recorded (ended ones too) for None; by id."""

    @abstractmethod
    def end_zonal_shift(
        self, zone: str, *, ended_ts: datetime, end_reason: str, event: ShiftEvent | None = None
    ) -> ZonalShift | None:
        """End the zone's open shift (expired or not), returning it ended; None if none is open, so that
        of two runners ending one shift, one gets it (and enqueues the failback)."""

    # --- overrides (run-time policy) ----------------------------------------------------------------
    @abstractmethod
    def set_override(self, override: Override, *, event: OverrideEvent | None = None) -> Override:
        """Record an override; returns it with `id` set. Ends the dependency's open override first:
        end_reason "replaced" at `override.created_ts`, or "expired" at its own expiry if it had run out.
        One given with `ended_ts` set is stored as history (`store copy`) and ends nothing."""

    @abstractmethod
    def overrides(self, active_at: datetime | None = None) -> list[Override]:
        """Overrides active at `active_at`, or every override ever recorded for None; by id."""

    @abstractmethod
    def end_override(
        self, dependency: str, *, ended_ts: datetime, end_reason: str, event: OverrideEvent | None = None
    ) -> Override | None:
        """End the dependency's open override (expired or not), returning it ended; None if none is open."""

    # --- leases: one runner acts on a dependency at a time (several runners share one store) --------
    @abstractmethod
    def acquire_lease(self, dependency: str, holder: str, ttl_s: float) -> int | None:
        """Take, or renew, the lease on `dependency` for `holder`, running `ttl_s` seconds from now.

        Returns the fencing token: it grows each time the lease passes to a new holder (or to the same
        holder after its lease ran out) and stays the same on a renewal, so an action can check right
        before each step that nobody took over. None while another holder's lease runs."""

    @abstractmethod
    def acquire_leases(self, dependencies: Sequence[str], holder: str, ttl_s: float) -> dict[str, int | None]:
        """`acquire_lease` for each of `dependencies`, in one transaction (the runner's dispatch pass): each
        one's fencing token, None for those another holder's lease still runs on."""

    @abstractmethod
    def lease_holds(self, dependency: str, holder: str, token: int) -> bool:
        """Whether `holder` still holds the lease it got as `token`: not run out, nobody took over."""

    @abstractmethod
    def release_lease(self, dependency: str, holder: str, token: int) -> None:
        """End the lease now (a later holder gets a new token); nothing if it is no longer this one."""

    @abstractmethod
    def abandoned_actions(self, holder: str) -> list[ActionRecord]:
        """Unfinished actions of runners other than `holder` whose runner no longer holds the dependency's
        lease (it ran out, or passed to another runner): that runner died or was cut off.
        `recover_interrupted(runner, only=[action_id])` takes one over."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """What `depmirror store check` reports: backend, schema version and row counts (events, primaries,
        applied plan, RF changes, alerts waiting, alerts decided, open actions, leases in force)."""

    # --- lifecycle --------------------------------------------------------------------------------
    @abstractmethod
    def check(self) -> None:
        """Raise StoreError unless the store answers (readiness)."""

    @abstractmethod
    def check_writable(self) -> None:
        """Raise StoreError unless a write could start now (readiness); answers within about a second.

        Says why: the file or its directory is read-only, or another process holds the write lock.
        """

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
