"""Zonal shifts against the store: start one (checks, record, queue the switchovers), end one (record, queue
the failbacks), and what the runner and the CLI show. The decisions are `zonal_shift`'s; this module reads
what they need and records what they decide, each shift with its history event in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from depmirror.errors import ConfigError
from depmirror.fleet.applied import state_of
from depmirror.fleet.current import with_primaries
from depmirror.fleet.zonal_shift import (
    Moved,
    ShiftDecision,
    ShiftRequest,
    decide_shift,
    failback_items,
    moves_recorded,
    primaries_in,
    shift_fingerprint,
    switchover_items,
)
from depmirror.graph.model import Graph
from depmirror.planner.plan import compute_plan
from depmirror.planner.state import InstanceRecord, State
from depmirror.store import Event, EventFilter, Store, StoreConflict, ZonalShift, open_store

# Zonal shift events to look through for the one that started a shift (shifts are rare: minutes apart).
_START_LOOKBACK = 500


@dataclass(frozen=True, slots=True)
class StartResult:
    decision: ShiftDecision
    shift: ZonalShift | None  # as stored; None when refused or in shadow mode
    event: Event
    queued: int = 0

    @property
    def refused(self) -> bool:
        return self.decision.refusal is not None and self.shift is None and self.event.kind == "refused"


@dataclass(frozen=True, slots=True)
class EndResult:
    shift: ZonalShift
    moves: tuple[Moved, ...]
    queued: int


def fleet_state(store: Store, graph: Graph) -> State:
    """What runs now: the applied plan with the store's primaries; the graph's own plan before any adjust."""
    applied = store.applied_plan()
    if applied:
        state = state_of(applied, store.url)
    else:
        plan = compute_plan(graph)
        state = State(
            instances=tuple(
                InstanceRecord(item.name, i.host, i.role, i.zone) for item in plan.dependencies for i in item.instances
            )
        )
    return with_primaries(state, store.primaries())


def start_shift(
    store: Store,
    graph: Graph,
    request: ShiftRequest,
    *,
    shadow: bool = False,
    trigger: Mapping[str, Any] | None = None,
    record_refusal: bool = True,
) -> StartResult:
    """Check and record a shift of `request.zone` and queue the switchovers of the primaries in it.

    Refused: a `refused` event (action zonal_shift) says why (unless `record_refusal` is off: the runner
    records one per zone alert, not one per resend). Shadow: a `zonal_shift` event with outcome `shadow`
    says what would have moved; nothing else changes. A shift that another runner started a moment earlier
    is refused by the store (StoreConflict) and reported here as refused too."""
    cause = dict(trigger or {"type": "operator"})
    state = fleet_state(store, graph)
    decision = decide_shift(graph, state, store.zonal_shifts(active_at=request.now), request)

    def refused(decision: ShiftDecision) -> StartResult:
        event = refused_event(decision, cause)
        return StartResult(decision, None, store.append_event(event) if record_refusal else event)

    if decision.shift is None:
        return refused(decision)
    if shadow:
        return StartResult(decision, None, store.append_event(shift_event(decision, None, cause, "shadow")))
    recorded: list[Event] = []

    def event(stored: ZonalShift) -> Event:
        recorded.append(shift_event(decision, stored, cause, "succeeded"))
        return recorded[-1]

    try:
        stored = store.start_zonal_shift(
            decision.shift, max_active=graph.policy.zonal_shift.max_concurrent, event=event
        )
    except StoreConflict as conflict:
        return refused(ShiftDecision(request, None, conflict.problem, existing=conflict.existing))
    queued = store.enqueue(switchover_items(stored, decision.moves, request.now)).queued
    return StartResult(decision, stored, recorded[-1], queued)


def requeue_switchovers(store: Store, graph: Graph, shift: ZonalShift, now: datetime) -> int:
    """Queue the switchover of every primary still in a shifted zone (a runner that died between the shift
    and its queue items, a resend of the zone alert). Items already queued are duplicates, never twice."""
    moves = primaries_in(graph, fleet_state(store, graph), shift.zone)
    return store.enqueue(switchover_items(shift, moves, now)).queued if moves else 0


def end_shift(
    store: Store,
    zone: str,
    *,
    now: datetime,
    end_reason: str,
    ended_by: str,
    failback: bool,
    failback_hold_s: float,
    ended_ts: datetime | None = None,
) -> EndResult | None:
    """End the zone's open shift and queue the failback of what it moved (when `failback` is on); None when
    the zone has no open shift (or another runner ended it first)."""
    open_shift = next((s for s in store.zonal_shifts() if s.zone == zone and s.ended_ts is None), None)
    if open_shift is None:
        return None
    moves = _moved_by(store, open_shift)
    ended_at = ended_ts or now

    def event(ended: ZonalShift) -> Event:
        return Event(
            kind="zonal_shift_end",
            dependency="-",
            outcome="succeeded",
            time=now,
            trigger={"type": "zonal_shift_end", "by": ended_by},
            decision="end",
            reason=end_reason,
            details={
                "zone": ended.zone,
                "shift_id": ended.id,
                "started_ts": ended.started_ts.isoformat(),
                "ended_ts": ended_at.isoformat(),
                "failback": failback,
                "moved": [{"dependency": m.dependency, "instance": m.instance} for m in moves],
            },
        )

    ended = store.end_zonal_shift(zone, ended_ts=ended_at, end_reason=end_reason, event=event)
    if ended is None:
        return None
    queued = store.enqueue(failback_items(ended, moves, now, failback_hold_s)).queued if failback and moves else 0
    return EndResult(ended, moves, queued)


def latest_shift_moves(store_url: str, zone: str) -> dict[str, Any]:
    """What the latest shift of `zone` moved, for `failback.yml -e depmirror_zone=ZONE`: the shift and the
    instances to bring back (`{dependency, instance}`), read from the history as the runner's end does.
    A zone that was never shifted, or whose shift is still active, is an error naming the fix."""
    with open_store(store_url) as store:
        shifts = [s for s in store.zonal_shifts() if s.zone == zone]
        if not shifts:
            raise ConfigError(
                store_url,
                "depmirror_zone",
                f"zone {zone[:200]!r} was never shifted: there is nothing to fail back",
                "pass the recovered instances as depmirror_dependencies (dependency@host) instead",
            )
        latest = max(shifts, key=lambda s: (s.started_ts, s.id or 0))
        if latest.ended_ts is None:
            raise ConfigError(
                store_url,
                "depmirror_zone",
                f"the shift of {zone!r} (#{latest.id}, since {latest.started_ts.isoformat()}) has not ended",
                f"end it first (depmirror zone end {zone}); the runner then queues the failbacks itself",
            )
        moves = _moved_by(store, latest)
    return {
        "zone": zone,
        "shift_id": latest.id,
        "started_ts": latest.started_ts.isoformat(),
        "ended_ts": latest.ended_ts.isoformat(),
        "instances": [{"dependency": m.dependency, "instance": m.instance} for m in moves],
    }


def _moved_by(store: Store, shift: ZonalShift) -> tuple[Moved, ...]:
    """What the shift moved: the dependencies its start event lists, and any whose switchover its queue
    items triggered later (requeue_switchovers)."""
    moves = {m.dependency: m for m in _recorded_moves(store, shift)}
    since = shift.started_ts
    for event in store.events(EventFilter(kinds=("rollback",), since=since, limit=None)):
        prints = event.trigger.get("fingerprints") or [event.trigger.get("fingerprint")]
        expected = shift_fingerprint(shift.zone, event.dependency, shift.started_ts)
        if expected in prints and event.instance and event.dependency not in moves:
            moves[event.dependency] = Moved(event.dependency, event.instance)
    return tuple(sorted(moves.values(), key=lambda m: m.dependency))


def _recorded_moves(store: Store, shift: ZonalShift) -> tuple[Moved, ...]:
    for event in store.events(EventFilter(kinds=("zonal_shift",), limit=_START_LOOKBACK)):
        if event.details.get("shift_id") == shift.id and event.outcome == "succeeded":
            return moves_recorded(event.details)
    return ()


def shift_event(decision: ShiftDecision, stored: ZonalShift | None, cause: dict[str, Any], outcome: str) -> Event:
    request = decision.request
    details: dict[str, Any] = {**decision.details(), "shift_id": None if stored is None else stored.id}
    if decision.shift is not None:
        details["expires_ts"] = decision.shift.expires_ts.isoformat()
    verb = "shifted" if outcome == "succeeded" else "would shift (shadow)"
    return Event(
        kind="zonal_shift",
        dependency="-",
        outcome=outcome,
        time=request.now,
        trigger=cause,
        decision="shift",
        reason=f"{request.zone} {verb}: {request.reason}; {len(decision.moves)} primary(ies) to move",
        details=details,
    )


def refused_event(decision: ShiftDecision, cause: dict[str, Any]) -> Event:
    request = decision.request
    return Event(
        kind="refused",
        action="zonal_shift",
        dependency="-",
        outcome="refused",
        time=request.now,
        trigger=cause,
        decision="refuse",
        reason=str(decision.refusal),
        details={"zone": request.zone[:200], "created_by": request.created_by[:200]},
    )


def status(store: Store, now: datetime) -> list[dict[str, Any]]:
    """Every shift not ended, and those that ended in the last day: what `zone status` prints."""
    rows = []
    for shift in store.zonal_shifts():
        recent = shift.ended_ts is not None and (now - shift.ended_ts).total_seconds() < 86400
        if shift.ended_ts is None or recent:
            row = shift.as_dict()
            row["state"] = "active" if shift.active_at(now) else ("expired" if shift.ended_ts is None else "ended")
            rows.append(row)
    return rows
