"""Zonal shift decisions: whether a zone may be shifted now, what moves, and the queue items that move it.

Pure: the graph, what runs (a planner State with the store's primaries applied), the shifts in force and
the clock in; a decision out. `zonal_shift_service` reads the store and records what this decides, for the
CLI (`depmirror zone ...`) and the runner (the zone alert) alike (docs/rollback.md, "A zone outage, step by
step").

The safety checks, in order, each refusing with its own reason: the zone is one of the graph's; the expiry
is positive and at most 72 h; a reason is given; the zone is not already shifted; fewer than
`policy.zonal_shift.max_concurrent` other zones are shifted; some zone is left; the zones left can hold
the minimum RF of every dependency that runs in the zone (one instance per VM) and the minimum RF of all
dependencies together (VM capacity).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from depmirror.graph.model import Graph
from depmirror.planner.state import InstanceRecord, State, instance_key
from depmirror.store.model import QueuedAlert, ZonalShift

DEFAULT_EXPIRY_S = 3600.0
MAX_EXPIRY_S = 72 * 3600.0
MAX_REASON = 500
MAX_NAME = 200
# The queue contract with the runner's worker (docs/runner.md, "The zone alert"): one item per dependency,
# a firing ZonalShift to switch it over, a resolved ZonalShiftEnd (same fingerprint) to fail it back.
SHIFT_ALERTNAME = "ZonalShift"
END_ALERTNAME = "ZonalShiftEnd"
# Shifts the runner starts from the zone alert carry this creator; only they end when the alert resolves
# for the hold time (a person's shift runs until it expires or a person ends it).
RUNNER_PREFIX = "runner:"
# How many names a refusal lists before "and N more".
_LISTED = 5


@dataclass(frozen=True, slots=True)
class Moved:
    """A dependency whose primary runs in the shifted zone: its switchover is queued."""

    dependency: str
    instance: str  # dependency@host of the primary in the zone


@dataclass(frozen=True, slots=True)
class ShiftRequest:
    zone: str
    reason: str
    created_by: str
    now: datetime
    expires_s: float = DEFAULT_EXPIRY_S


@dataclass(frozen=True, slots=True)
class ShiftDecision:
    """`shift` is set when the zone may be shifted (record it, or in shadow mode say it would be);
    otherwise `refusal` says why not. `existing` is the zone's shift already in force, if any."""

    request: ShiftRequest
    shift: ZonalShift | None
    refusal: str | None
    moves: tuple[Moved, ...] = ()
    existing: ZonalShift | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def details(self) -> dict[str, object]:
        """What the history event records: enough to fail the moved dependencies back later."""
        return {
            "zone": self.request.zone,
            "expires_s": self.request.expires_s,
            "created_by": self.request.created_by,
            "moved": [{"dependency": m.dependency, "instance": m.instance} for m in self.moves],
            "notes": list(self.notes),
        }


def is_runner_shift(shift: ZonalShift) -> bool:
    return shift.created_by.startswith(RUNNER_PREFIX)


def check_expiry(seconds: float) -> str | None:
    """Why an expiry is not allowed, or None."""
    if not seconds > 0:
        return "the expiry must be a positive duration (e.g. 1h)"
    if seconds > MAX_EXPIRY_S:
        return f"the expiry {seconds / 3600:g}h is over the maximum of 72h: shifts always end"
    return None


def check_text(value: str, what: str, limit: int) -> str | None:
    if not value.strip():
        return f"a {what} is required: say why, for whoever reads the history"
    if len(value) > limit or not value.isprintable():
        return f"the {what} must be at most {limit} printable characters"
    return None


def primaries_in(graph: Graph, state: State, zone: str) -> tuple[Moved, ...]:
    """Every dependency of the graph whose primary runs in `zone` and that runs somewhere else too, by name.
    One with no instance outside the zone has nowhere to move: its own alert records that refusal, once;
    a shift's switchover would only record it a second time (`stranded_in` names them)."""
    stranded = set(stranded_in(graph, state, zone))
    moved = []
    for record in state.instances:
        if (
            record.role == "primary"
            and record.dependency in graph.dependencies
            and record.dependency not in stranded
            and _zone(graph, record) == zone
        ):
            moved.append(Moved(record.dependency, instance_key(record.dependency, record.host)))
    return tuple(sorted(set(moved), key=lambda m: m.dependency))


def stranded_in(graph: Graph, state: State, zone: str) -> tuple[str, ...]:
    """The dependencies of the graph with instances in `zone` and none outside it, by name."""
    zones: dict[str, set[str | None]] = {}
    for record in state.instances:
        if record.dependency in graph.dependencies:
            zones.setdefault(record.dependency, set()).add(_zone(graph, record))
    return tuple(sorted(name for name, found in zones.items() if found == {zone}))


def decide_shift(graph: Graph, state: State, active: Sequence[ZonalShift], request: ShiftRequest) -> ShiftDecision:
    """Whether `request.zone` may be shifted now, and which primaries it moves."""

    def refuse(reason: str, existing: ZonalShift | None = None) -> ShiftDecision:
        return ShiftDecision(request, None, reason, existing=existing)

    zone = request.zone
    if zone not in graph.zones:
        return refuse(f"unknown zone {_short(zone)}: the graph has {', '.join(sorted(graph.zones)) or 'none'}")
    problem = (
        check_expiry(request.expires_s)
        or check_text(request.reason, "reason", MAX_REASON)
        or check_text(request.created_by, "name of who shifts", MAX_NAME)
    )
    if problem:
        return refuse(problem)
    in_force = [shift for shift in active if shift.active_at(request.now)]
    same = next((shift for shift in in_force if shift.zone == zone), None)
    if same is not None:
        until = same.expires_ts.isoformat(timespec="seconds")
        return refuse(f"zone {zone} is already shifted (shift {same.id} by {same.created_by} until {until})", same)
    others = sorted({shift.zone for shift in in_force})
    limit = graph.policy.zonal_shift.max_concurrent
    if len(others) >= limit:
        return refuse(
            f"{_names(others)} already shifted and policy.zonal_shift.max_concurrent is {limit}: "
            "shifting another zone could leave too little to serve (end a shift first, or raise the limit)"
        )
    left = sorted(set(graph.zones) - {zone} - set(others))
    if not left:
        return refuse(f"shifting {zone} would leave no zone to serve from")
    problem = _capacity_problem(graph, state, zone, left)
    if problem:
        return refuse(problem)
    moves = primaries_in(graph, state, zone)
    stranded = stranded_in(graph, state, zone)
    notes: tuple[str, ...] = () if moves or stranded else (f"no primary runs in {zone}: nothing to switch over",)
    if stranded:
        listed = ", ".join(stranded[:_LISTED]) + (
            f" and {len(stranded) - _LISTED} more" if len(stranded) > _LISTED else ""
        )
        notes += (f"{listed}: no instance outside {zone}, nowhere to move (not queued; adjust places one)",)
    shift = ZonalShift(
        zone=zone,
        reason=request.reason,
        created_by=request.created_by,
        started_ts=request.now,
        expires_ts=request.now + timedelta(seconds=request.expires_s),
    )
    return ShiftDecision(request, shift, None, moves, notes=notes)


def _capacity_problem(graph: Graph, state: State, zone: str, left: Sequence[str]) -> str | None:
    vms_left = [vm for vm in graph.vms.values() if vm.zone in left]
    running_here = {r.dependency for r in state.instances if _zone(graph, r) == zone}
    short = sorted(
        (name, graph.dependencies[name].replication.min_rf)
        for name in running_here
        if name in graph.dependencies and graph.dependencies[name].replication.min_rf > len(vms_left)
    )
    if short:
        listed = ", ".join(f"{name} (min RF {rf})" for name, rf in short[:_LISTED])
        more = f" and {len(short) - _LISTED} more" if len(short) > _LISTED else ""
        return (
            f"the zones left ({', '.join(left)}) have {len(vms_left)} VM(s), fewer than the minimum RF of "
            f"{listed}{more} (one instance per VM): shifting {zone} would leave them under their minimum"
        )
    needed = sum(dep.replication.min_rf for dep in graph.dependencies.values())
    capacity = sum(vm.capacity for vm in vms_left)
    if needed > capacity:
        return (
            f"the zones left ({', '.join(left)}) hold {capacity} instance(s) (VM capacity), fewer than the "
            f"{needed} that the minimum RF of every dependency needs: shifting {zone} would leave some under it"
        )
    return None


def shift_fingerprint(zone: str, dependency: str, started: datetime) -> str:
    return f"zonal_shift:{zone}:{dependency}:{int(started.timestamp())}"


def shift_behind(alert: QueuedAlert, shifts: Iterable[ZonalShift], now: datetime) -> ZonalShift | None:
    """The active shift whose switchover item `alert` is, or None. The name and the fingerprint alone prove
    nothing (a webhook can send any): the store must hold a shift of the alert's zone, active now, that
    started when the fingerprint says."""
    if alert.status != "firing" or alert.labels.get("alertname") != SHIFT_ALERTNAME:
        return None
    zone = alert.labels.get("zone", "")
    for shift in shifts:
        if (
            shift.zone == zone
            and shift.active_at(now)
            and alert.fingerprint == shift_fingerprint(shift.zone, alert.dependency, shift.started_ts)
        ):
            return shift
    return None


def switchover_items(shift: ZonalShift, moves: Iterable[Moved], now: datetime) -> list[QueuedAlert]:
    """One firing item per moved dependency: the worker switches each over, in one batch."""
    return [_item(shift, move, "firing", SHIFT_ALERTNAME, now, now) for move in moves]


def failback_items(shift: ZonalShift, moves: Iterable[Moved], now: datetime, hold_s: float) -> list[QueuedAlert]:
    """One resolved item per dependency the shift moved, due after the failback hold: the worker fails it
    back to its old primary as the failback policy says (health re-check, cooldown, flapping)."""
    due = now + timedelta(seconds=hold_s)
    return [_item(shift, move, "resolved", END_ALERTNAME, now, due) for move in moves]


def _item(shift: ZonalShift, move: Moved, status: str, alertname: str, now: datetime, due: datetime) -> QueuedAlert:
    return QueuedAlert(
        fingerprint=shift_fingerprint(shift.zone, move.dependency, shift.started_ts),
        starts_at=shift.started_ts.isoformat(),
        status="firing" if status == "firing" else "resolved",
        dependency=move.dependency,
        instance=move.instance,
        labels={
            "alertname": alertname,
            "dependency": move.dependency,
            "instance": move.instance,
            "zone": shift.zone,
        },
        annotations={"summary": f"zonal shift of {shift.zone}: {shift.reason}"[:MAX_REASON]},
        group_key=f"zonal_shift:{shift.zone}",
        received_at=now,
        not_before=due,
    )


def moves_recorded(details: Mapping[str, object]) -> tuple[Moved, ...]:
    """The moved dependencies a `zonal_shift` event recorded (tolerant: an older event may lack them)."""
    found = details.get("moved")
    if not isinstance(found, list):
        return ()
    return tuple(
        Moved(str(item["dependency"]), str(item["instance"]))
        for item in found
        if isinstance(item, dict) and isinstance(item.get("dependency"), str) and isinstance(item.get("instance"), str)
    )


def _zone(graph: Graph, record: InstanceRecord) -> str | None:
    vm = graph.vms.get(record.host)
    return vm.zone if vm is not None else record.zone


def _names(zones: Sequence[str]) -> str:
    return f"zone {zones[0]} is" if len(zones) == 1 else f"zones {', '.join(zones)} are"


def _short(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."
