"""Which VM runs each instance: sticky, spread across zones, capacity-aware, never two per VM.

Order of work (all deterministic for the same inputs):
1. Existing instances stay where they are unless their VM is gone, unhealthy or full, or the instance
   itself is unhealthy. Primaries claim capacity first. A primary is never moved or decommissioned
   (failover promotes a mirror first); the last serving instance is never decommissioned either.
2. If more instances run than the RF wants, the extras go: never the primary, first from the zone
   holding most instances of the dependency, least healthy first.
3. Missing instances are placed, every dependency up to its min RF first (most critical first), then
   up to its RF: zones of known good health before zones of unknown health, then the zone with the fewest
   instances of the dependency, then the VM with the most free capacity that does not run it already.
Zone rules (`zones.py`): a zone that is unhealthy or under a zonal shift gets no new instance; the
instances in it stay but do not count towards RF, and its primaries move to another zone (for a stateful
kind only to a replica that already runs: a new instance would start empty). A minimum RF that only such a
zone could hold is refused with a plan warning, never placed there.
History penalties (`policy.learning`, learning.py): a penalised VM takes a new instance only after every
unpenalised VM of its zone, a penalised zone only after the zones holding as many instances of the
dependency; what runs stays where it is. Without penalties nothing of the above changes.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from depmirror.errors import ConfigError
from depmirror.graph.model import Graph, Mode, Role
from depmirror.planner.learning import Penalties
from depmirror.planner.state import HealthSnapshot, InstanceRecord
from depmirror.planner.zones import ZoneRules, ZoneVerdict, judge_zones


@dataclass(slots=True)
class PlacementRequest:
    name: str
    rf: int
    min_rf: int
    mode: Mode
    stateful: bool = False  # its primary moves only to a replica that already runs (never an empty one)


@dataclass(slots=True)
class Slot:
    """One instance in the target: where it runs, its role, and why it is there."""

    host: str
    zone: str | None
    role: Role
    existing: bool
    health: float | None
    reason: str
    previous_role: Role | None = None
    counts: bool = True  # False: kept only because it is the primary (or last serving), not towards RF
    parked: bool = False  # in a zone that is unhealthy or shifted: kept, not counted, not the primary


@dataclass(frozen=True, slots=True)
class Decommission:
    host: str
    zone: str | None
    role: Role
    reason: str
    could_serve: bool = False  # evicted only for capacity: it still answers until replaced


@dataclass(slots=True)
class DependencyPlacement:
    slots: list[Slot] = field(default_factory=list)
    decommissions: list[Decommission] = field(default_factory=list)
    cut: str | None = None
    refused: str | None = None  # min RF that only an excluded zone could hold: refused, not placed there
    warnings: list[str] = field(default_factory=list)


class PlacementError(ConfigError):
    """The graph asks for a placement that the pool cannot give; names the constraint that fails."""


def place(
    graph: Graph,
    requests: Sequence[PlacementRequest],
    existing: Mapping[str, list[InstanceRecord]],
    health: HealthSnapshot,
    zones: ZoneRules | None = None,
    *,
    penalties: Penalties | None = None,
) -> dict[str, DependencyPlacement]:
    """Place every request; `zones` default: the verdicts of `health`'s zone scores, with no zonal shift.
    `penalties`: the history's (learning.py), None while `policy.learning` is off."""
    zones = judge_zones(graph, health) if zones is None else zones
    pool = _Pool(graph, health, zones, penalties)
    results = {r.name: DependencyPlacement() for r in requests}
    # Each dependency's own threshold (an `unhealthy` override), else the fleet's, judges its instances.
    candidates = {
        r.name: _examine(graph, health, graph.unhealthy_below(r.name), r.name, existing.get(r.name, []))
        for r in requests
    }
    _claim_capacity(pool, requests, candidates, results)
    for request in requests:
        _trim(pool, request, results[request.name])
    for stage in ("min", "rf"):
        for request in requests:
            _provision(pool, request, stage, graph.source, requests, results)
    for request in requests:
        _assign_roles(request, results[request.name], zones)
    return results


@dataclass(slots=True)
class _Candidate:
    record: InstanceRecord
    primary: bool
    health: float | None
    problem: str | None  # why it cannot stay (None: it can)


def _examine(
    graph: Graph, health: HealthSnapshot, threshold: float, name: str, records: list[InstanceRecord]
) -> list[_Candidate]:
    if not records:
        return []
    ordered = sorted(records, key=lambda r: (r.role != "primary", r.host))
    seen: set[str] = set()
    primary_taken = False
    found: list[_Candidate] = []
    for record in ordered:
        score = health.instance(name, record.host)
        is_primary = record.role == "primary" and not primary_taken
        primary_taken = primary_taken or is_primary
        if record.host in seen:
            continue  # the same instance listed twice (dep@host is one instance): keep the first record
        problem = _problem(graph, health, threshold, record, score)
        seen.add(record.host)
        found.append(_Candidate(record, is_primary, score, problem))
    return found


def _problem(
    graph: Graph, health: HealthSnapshot, threshold: float, record: InstanceRecord, score: float | None
) -> str | None:
    if record.host not in graph.vms:
        return f"VM {record.host} is no longer in the pool"
    vm_score = health.vms.get(record.host)
    if vm_score is not None and vm_score < threshold:
        return f"VM {record.host} is unhealthy ({vm_score:.2f} < {threshold})"
    if score is not None and score < threshold:
        return f"instance is unhealthy ({score:.2f} < {threshold})"
    return None


def _claim_capacity(
    pool: _Pool,
    requests: Sequence[PlacementRequest],
    candidates: Mapping[str, list[_Candidate]],
    results: dict[str, DependencyPlacement],
) -> None:
    # Primaries first, so that a shrunken VM evicts mirrors rather than the instance that takes writes.
    for primaries in (True, False):
        for request in requests:
            for cand in candidates[request.name]:
                if cand.primary is primaries:
                    _settle(pool, request.name, cand, results[request.name])
    for request in requests:
        _keep_last_serving(pool, results[request.name])


def _settle(pool: _Pool, name: str, cand: _Candidate, result: DependencyPlacement) -> None:
    record = cand.record
    zone = pool.zone_of(record.host) or record.zone
    excluded = pool.zones.exclusion(zone)
    if excluded is not None and (cand.primary or pool.zone_of(record.host) is not None):
        _park(pool, name, cand, zone, excluded, result)
        return
    problem = cand.problem
    if problem is None and not pool.take(record.host, name):
        problem = f"VM {record.host} is full (capacity {pool.capacity(record.host)})"
    if cand.primary:
        pool.note_primary(record.host)
    if problem is None:
        result.slots.append(Slot(record.host, zone, record.role, True, cand.health, "already runs here", record.role))
        return
    if cand.primary:
        pool.force_take(record.host, name)
        reason = f"primary kept although {problem}: never decommissioned; failover must promote a mirror first"
        result.slots.append(Slot(record.host, zone, "primary", True, cand.health, reason, "primary", counts=False))
        return
    full = problem.startswith(f"VM {record.host} is full")
    result.decommissions.append(
        Decommission(record.host, zone, record.role, problem + ("; moved elsewhere" if full else ""), full)
    )


def _park(
    pool: _Pool, name: str, cand: _Candidate, zone: str | None, excluded: ZoneVerdict, result: DependencyPlacement
) -> None:
    """Keep an instance of an excluded zone without counting it: it may serve again when the zone does."""
    record = cand.record
    if not pool.take(record.host, name):
        pool.force_take(record.host, name)
    if cand.primary:
        pool.note_primary(record.host)
    reason = f"kept, not counted towards RF: {excluded.rule}"
    if cand.problem is not None:
        reason += f"; also {cand.problem}"
    result.slots.append(
        Slot(record.host, zone, record.role, True, cand.health, reason, record.role, counts=False, parked=True)
    )


def _keep_last_serving(pool: _Pool, result: DependencyPlacement) -> None:
    """If no kept instance can serve, keep an evicted one that can: never lose the last serving one."""
    if any(s.counts for s in result.slots):
        return
    for index, gone in enumerate(result.decommissions):
        if gone.could_serve:
            pool.force_take(gone.host, "")
            reason = f"last serving instance kept although {gone.reason.removesuffix('; moved elsewhere')}"
            result.slots.append(Slot(gone.host, gone.zone, gone.role, True, None, reason, gone.role))
            del result.decommissions[index]
            return


def _trim(pool: _Pool, request: PlacementRequest, result: DependencyPlacement) -> None:
    counting = [s for s in result.slots if s.counts]
    while len(counting) > request.rf:
        removable = [s for s in counting if s.role != "primary"]
        if not removable:
            return
        crowd: dict[str | None, int] = {}
        for slot in result.slots:
            crowd[slot.zone] = crowd.get(slot.zone, 0) + 1
        victim = max(removable, key=lambda s: (crowd[s.zone], _health_rank(s.health), s.host))
        counting.remove(victim)
        _evict(
            pool,
            result,
            victim,
            f"RF is {request.rf}: extra instance removed ({victim.zone} holds {crowd[victim.zone]} of them)",
        )


def _evict(pool: _Pool, result: DependencyPlacement, slot: Slot, reason: str) -> None:
    result.slots.remove(slot)
    pool.release(slot.host)
    result.decommissions.append(Decommission(slot.host, slot.zone, slot.role, reason))


def _health_rank(score: float | None) -> float:
    # Higher rank goes first: unhealthy before unknown before healthy.
    return 2.0 - score if score is not None else 1.0


def _provision(
    pool: _Pool,
    request: PlacementRequest,
    stage: str,
    source: str,
    requests: Sequence[PlacementRequest],
    results: dict[str, DependencyPlacement],
) -> None:
    result = results[request.name]
    if result.refused is not None:
        return  # its min RF was refused: the RF stage cannot place more
    goal = request.min_rf if stage == "min" else request.rf
    counting = sum(1 for s in result.slots if s.counts)
    leaving = {d.host for d in result.decommissions} if counting < goal else set()
    while counting < goal:
        picked = pool.pick(result.slots, leaving)
        if picked is None and stage == "min" and _reclaim_for_min(pool, request, result, requests, results):
            picked = pool.pick(result.slots, leaving)
        if picked is None:
            _report_shortage(request, result, stage, source, counting, pool)
            return
        host, zone, reason = picked
        result.slots.append(Slot(host, zone, "mirror", False, None, reason))
        counting += 1


def _reclaim_for_min(
    pool: _Pool,
    request: PlacementRequest,
    result: DependencyPlacement,
    requests: Sequence[PlacementRequest],
    results: dict[str, DependencyPlacement],
) -> bool:
    """Free a VM for `request`'s min RF from the least critical dependency that has more than its own min.

    Kept instances claim capacity before new ones are placed, so on a short pool another dependency's
    extra mirrors would otherwise stand in the way of this one's minimum: nothing drops below its min RF
    while some other dependency runs above its own. Primaries are never taken.
    """
    own = {s.host for s in result.slots} | {d.host for d in result.decommissions}
    for donor in reversed(requests):  # least critical first
        donated = results[donor.name]
        counting = [s for s in donated.slots if s.counts]
        if donor.name == request.name or len(counting) <= donor.min_rf:
            continue
        for slot in counting:
            if slot.role == "primary" or not slot.existing or slot.host in own or not pool.usable(slot.host):
                continue
            _evict(
                pool,
                donated,
                slot,
                f"capacity: {slot.host} is needed for the minimum RF of {request.name} "
                f"({request.min_rf}); {donor.name} keeps at least its own ({donor.min_rf})",
            )
            return True
    return False


def _report_shortage(
    request: PlacementRequest, result: DependencyPlacement, stage: str, source: str, have: int, pool: _Pool
) -> None:
    goal = request.min_rf if stage == "min" else request.rf
    constraint = (
        f"needs {goal} VMs that do not already run it and have free capacity; found {have} "
        f"(pool: {pool.vm_count} VMs, {pool.free_total()} free slots; constraints: "
        "one instance per VM, VM capacity, unhealthy VMs excluded)"
    )
    if stage == "min" and (blocked := pool.excluded_room(result.slots)):
        # Only a zone that is unhealthy or shifted could hold it: refuse the minimum, keep the plan.
        rules = " and ".join(v.rule for v in blocked)
        result.refused = (
            f"minimum RF {goal} refused: only {have} instance(s) fit outside excluded zones, and {rules}: "
            "no new instance is placed there"
        )
        result.warnings.append(result.refused)
        return
    if stage == "min":
        raise PlacementError(
            source,
            f"dependencies.{request.name}.replication.min",
            f"placement cannot be satisfied: {constraint}",
            "add VMs or capacity, or lower replication.min",
        )
    result.cut = f"placement: RF {request.rf} wanted, {have} placed: {constraint}"


def _assign_roles(request: PlacementRequest, result: DependencyPlacement, zones: ZoneRules) -> None:
    other: Role = "mirror" if request.mode == "active-active" else "standby"
    primary = next((s for s in result.slots if s.previous_role == "primary"), None)
    if primary is not None and primary.parked:
        primary = _move_primary(request, result, zones, primary)
    elif primary is None and result.slots:
        # Prefer a running, healthy instance: promoting it needs no data copy; then a zone that may hold
        # primaries, of known good health. A stateful kind takes any running instance before a new one.
        # min() keeps the first of equals: the first instance placed, in the zone with fewest primaries.
        def rank(s: Slot) -> tuple[bool, bool, int, float]:
            fresh = not s.existing
            if request.stateful:
                return (fresh, s.parked, zones.tier(s.zone), _health_rank(s.health))
            return (s.parked, fresh, zones.tier(s.zone), _health_rank(s.health))

        primary = min(result.slots, key=rank)
        primary.reason += "; no primary recorded: becomes the primary"
        if primary.parked:
            _primary_held(request, result, zones, primary)
    for slot in result.slots:
        slot.role = "primary" if slot is primary else other
    result.slots.sort(key=lambda s: (s.role != "primary", s.zone or "", s.host))


def _move_primary(request: PlacementRequest, result: DependencyPlacement, zones: ZoneRules, old: Slot) -> Slot:
    """The primary's zone is excluded: the best instance outside excluded zones takes over.

    A stateful kind's primary moves only to a replica that already runs (promoting it keeps the data); a new
    instance would start empty, so without such a replica the primary stays and the plan warns.
    """
    movable = [s for s in result.slots if not s.parked and (s.existing or not request.stateful)]
    if not movable:
        _primary_held(request, result, zones, old)
        return old
    found = zones.exclusion(old.zone)
    rule = found.rule if found is not None else f"{old.zone} is excluded"
    new = min(movable, key=lambda s: (not s.existing, zones.tier(s.zone), _health_rank(s.health)))
    if request.stateful:
        new.reason += (
            f"; promoted to primary in place of {old.host} (a replica that already runs, not an empty one): {rule}"
        )
    else:
        new.reason += f"; becomes the primary in place of {old.host}: {rule}"
    old.reason += f"; the primary moves to {new.host} ({new.zone})"
    return new


def _primary_held(request: PlacementRequest, result: DependencyPlacement, zones: ZoneRules, slot: Slot) -> None:
    """The primary stays in an excluded zone because nothing outside can take over: say why, and warn."""
    found = zones.exclusion(slot.zone)
    rule = found.rule if found is not None else f"{slot.zone} is excluded"
    if request.stateful and any(not s.parked for s in result.slots):
        why = "it is stateful and no replica runs outside excluded zones to promote (a new instance would start empty)"
    else:
        why = "no instance outside excluded zones can take over"
    slot.reason += f"; stays the primary: {why}"
    result.warnings.append(f"primary stays on {slot.host}: {rule}, but {why}")


# A reason cites this many of a penalty's events at most (a VM that failed a hundred times would otherwise
# repeat a hundred ids in the reason of every instance placed near it); `depmirror history` lists them all.
PENALTY_EVENTS_SHOWN = 5
PENALISED_VMS_NAMED = 3  # a zone with more penalised VMs than this says how many, not which


class _Pool:
    """Free capacity per VM, with a max-heap of VMs per zone for O(log n) picks."""

    def __init__(
        self, graph: Graph, health: HealthSnapshot, zones: ZoneRules, penalties: Penalties | None = None
    ) -> None:
        threshold = graph.policy.health.unhealthy
        self._vms = graph.vms
        self._free = {host: vm.capacity for host, vm in graph.vms.items()}
        self._zones = sorted(graph.zones)
        self.zones = zones
        # Zones that may take a new instance, in tiers (known healthy before unknown); excluded ones take none.
        self._open = [z for z in self._zones if zones.exclusion(z) is None]
        self._tier = {z: zones.tier(z) for z in self._open}
        self._restricted = zones.active
        self._some_healthy = zones.some_healthy
        self._zone_note = "".join(f"; {v.rule}: no new instance there" for v in zones.excluded) + "".join(
            f"; {v.rule}: new instances go to healthy zones first" for v in zones.avoided
        )
        self._excluded = {h for h, s in health.vms.items() if s is not None and s < threshold}
        self._heaps: dict[str, list[tuple[int, str]]] = {z: [] for z in self._zones}
        self._zone_free = dict.fromkeys(self._zones, 0)
        self._primaries = dict.fromkeys(self._zones, 0)
        # Penalised VMs stay out of the heaps: they are tried, in order of penalty, once a zone's heap has
        # nothing for an instance (so that without penalties the picks are exactly what they were).
        self._vm_penalty = {h: p for h, p in (penalties.vms if penalties else {}).items() if h in graph.vms}
        self._zone_penalty = {z: p for z, p in (penalties.zones if penalties else {}).items() if z in graph.zones}
        self._penalised: dict[str, list[str]] = {z: [] for z in self._zones}
        self._penalty_events = penalties.events if penalties else {}
        for host, vm in sorted(graph.vms.items()):
            if host not in self._excluded:
                if host in self._vm_penalty:
                    self._penalised[vm.zone].append(host)
                else:
                    self._heaps[vm.zone].append((-vm.capacity, host))
                self._zone_free[vm.zone] += vm.capacity
        for heap in self._heaps.values():
            heapq.heapify(heap)
        self._hosts_by_zone = {z: [h for _, h in heap] for z, heap in self._heaps.items()}
        self._zone_hosts = {z: len(hosts) for z, hosts in self._hosts_by_zone.items()}
        self.vm_count = len(graph.vms)

    def zone_of(self, host: str) -> str | None:
        vm = self._vms.get(host)
        return vm.zone if vm else None

    def note_primary(self, host: str) -> None:
        zone = self.zone_of(host)
        if zone is not None:
            self._primaries[zone] += 1

    def excluded_room(self, slots: list[Slot]) -> list[ZoneVerdict]:
        """Excluded zones with a VM that does not run the dependency: where a refused instance could go."""
        used = {s.host for s in slots}
        return [
            v
            for v in self.zones.excluded
            if any(vm.zone == v.zone and host not in used for host, vm in self._vms.items())
        ]

    def usable(self, host: str) -> bool:
        return host in self._free and host not in self._excluded

    def capacity(self, host: str) -> int:
        return self._vms[host].capacity

    def free_total(self) -> int:
        return sum(max(0, free) for host, free in self._free.items() if host not in self._excluded)

    def take(self, host: str, _name: str) -> bool:
        if self._free.get(host, 0) <= 0:
            return False
        self._set_free(host, self._free[host] - 1)
        return True

    def force_take(self, host: str, _name: str) -> None:
        if host in self._free:
            self._set_free(host, self._free[host] - 1)

    def release(self, host: str) -> None:
        if host in self._free:
            self._set_free(host, self._free[host] + 1)

    def _set_free(self, host: str, free: int) -> None:
        if host not in self._excluded:
            self._zone_free[self._vms[host].zone] += free - self._free[host]
        self._free[host] = free
        if free > 0 and host not in self._excluded and host not in self._vm_penalty:
            # Lazy heap: stale entries are skipped when popped (their free count no longer matches).
            zone = self._vms[host].zone
            heap = self._heaps[zone]
            heapq.heappush(heap, (-free, host))
            if len(heap) > 2 * self._zone_hosts[zone] + 16:
                # Rebuilt from the live counts once stale entries outnumber the VMs, so that a heap's size
                # (and each pick's log factor) follows the pool, not the number of instances placed so far.
                heap[:] = [(-f, h) for h in self._hosts_by_zone[zone] if (f := self._free[h]) > 0]
                heapq.heapify(heap)

    def pick(self, slots: list[Slot], avoid: set[str]) -> tuple[str, str, str] | None:
        """Best VM for one more instance; `avoid`: VMs whose instance of it is being decommissioned."""
        used_hosts = {s.host for s in slots} | avoid
        per_zone = dict.fromkeys(self._open, 0)
        for slot in slots:
            if slot.zone in per_zone:  # a kept instance may sit in a zone that left the graph or is excluded
                per_zone[slot.zone] += 1
        # Ties go to the zone with fewest primaries (the first instance becomes the primary) and then
        # the most free capacity, so that writes and load spread over zones too.
        first = not slots or all(s.parked for s in slots)
        ranked = sorted(
            (
                self._tier[z],
                count,
                self._zone_penalty.get(z, 0.0),
                self._primaries[z] if first else 0,
                -self._zone_free[z],
                z,
            )
            for z, count in per_zone.items()
        )
        for *_, zone in ranked:
            host = self._best_in_zone(zone, used_hosts)
            if host is not None:
                if first:
                    self._primaries[zone] += 1
                free = self._free[host]
                self._set_free(host, free - 1)
                return (
                    host,
                    zone,
                    (
                        f"new: {zone} holds {per_zone[zone]} instance(s), {self._why(zone)}; {host} has most "
                        f"free capacity there ({free} slot(s)){self._zone_note}{self._history_note(zone, host)}"
                    ),
                )
        return None

    def _history_note(self, zone: str, host: str) -> str:
        """What the history's penalties did to this pick, with the events they rest on (empty without)."""
        notes = []
        if zone in self._zone_penalty:
            notes.append(
                f"zone {zone} penalised {self._zone_penalty[zone]:g} by the history ({self._events('zone', zone)})"
            )
        if host in self._vm_penalty:
            notes.append(f"{host} penalised {self._vm_penalty[host]:g} by the history ({self._events('vm', host)})")
        elif len(self._penalised[zone]) > PENALISED_VMS_NAMED:
            notes.append(f"{len(self._penalised[zone])} VMs of {zone} penalised by the history are taken last")
        else:
            notes.extend(
                f"{vm} penalised {self._vm_penalty[vm]:g} by the history ({self._events('vm', vm)}): taken last"
                for vm in self._penalised[zone]
            )
        return "".join(f"; {note}" for note in notes)

    def _events(self, kind: str, name: str) -> str:
        found = self._penalty_events.get(f"{kind}:{name}", ())
        shown = ", ".join(f"#{event}" for event in found[:PENALTY_EVENTS_SHOWN])
        more = f" and {len(found) - PENALTY_EVENTS_SHOWN} more" if len(found) > PENALTY_EVENTS_SHOWN else ""
        return f"events {shown}{more}" if found else "no event ids"

    def _why(self, zone: str) -> str:
        if not self._restricted:
            return "fewest instances of it"
        if self._tier[zone] == 0:
            return "fewest instances of it among healthy zones"
        if self._some_healthy:
            return "fewest instances of it among zones of unknown health: no healthy zone has a free VM for it"
        return "fewest instances of it among zones that are not excluded"

    def _best_in_zone(self, zone: str, used_hosts: set[str]) -> str | None:
        heap = self._heaps[zone]
        skipped: list[tuple[int, str]] = []
        found: str | None = None
        while heap:
            neg_free, host = heapq.heappop(heap)
            if -neg_free != self._free[host] or self._free[host] <= 0:
                continue  # stale entry
            if host in used_hosts:
                skipped.append((neg_free, host))
                continue
            found = host
            break
        for entry in skipped:
            heapq.heappush(heap, entry)
        if found is None and self._penalised[zone]:
            free = self._free
            open_vms = [h for h in self._penalised[zone] if free[h] > 0 and h not in used_hosts]
            found = min(open_vms, key=lambda h: (self._vm_penalty[h], -free[h], h), default=None)
        return found
