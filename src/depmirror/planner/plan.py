"""The plan: what should run (per dependency: RF, mode, instances) and the diff from what runs now.

`compute_plan` is pure: the same graph, state, health and time give the same plan. The new RF decisions
and instance list are in `Plan.next_state`, for the caller to persist once the plan is applied.

The records of a plan (here and the planner's own in weights, replication and placement) are slotted
dataclasses but not frozen: a frozen dataclass sets every field through object.__setattr__, too slow for
the ~150k records of a 10k-dependency plan (docs/performance.md, "Planning"). Treat them as read-only all
the same. The graph model and the state stay frozen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from depmirror.gc_pause import paused_gc
from depmirror.graph.model import Dependency, Graph, Mode, Role
from depmirror.planner.learning import Failure, LearnedRf, learned_rf, placement_penalties
from depmirror.planner.placement import DependencyPlacement, PlacementRequest, place
from depmirror.planner.replication import (
    BudgetItem,
    RfResult,
    apply_budget,
    decide_mode,
    decide_rf,
    system_health_impact,
)
from depmirror.planner.state import HealthSnapshot, InstanceRecord, State
from depmirror.planner.weights import Weight, compute_weights
from depmirror.planner.zones import ZoneRules, judge_zones

PLAN_VERSION = 1


@dataclass(slots=True)
class InstancePlan:
    host: str
    zone: str | None
    address: str | None
    port: int
    role: Role
    status: str  # existing | new
    health: float | None
    reason: str
    counts: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "zone": self.zone,
            "address": self.address,
            "port": self.port,
            "role": self.role,
            "status": self.status,
            "health": self.health,
            "reason": self.reason,
            "counts_towards_rf": self.counts,
        }


@dataclass(slots=True)
class Action:
    action: str  # provision | keep | decommission
    dependency: str
    host: str
    zone: str | None
    role: Role
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "host": self.host,
            "zone": self.zone,
            "role": self.role,
            "reason": self.reason,
        }


@dataclass(slots=True)
class RfSummary:
    raw: float
    system_health_impact: float
    system_health_note: str
    decided: int
    direction: str
    reason: str
    min_rf: int
    max_rf: int
    budget_cut: str | None
    placement_cut: str | None
    learned: LearnedRf | None = None  # the minimum the history raised (policy.learning), when it did

    def to_dict(self) -> dict[str, Any]:
        document = {
            "raw": self.raw,
            "system_health_impact": self.system_health_impact,
            "system_health_note": self.system_health_note,
            "decided": self.decided,
            "direction": self.direction,
            "reason": self.reason,
            "min": self.min_rf,
            "max": self.max_rf,
            "budget_cut": self.budget_cut,
            "placement_cut": self.placement_cut,
        }
        if self.learned is not None:  # only then: without policy.learning plans stay byte for byte the same
            document["history"] = {
                "min": self.learned.min_rf,
                "raised_by": self.learned.raised_by,
                "reason": self.learned.reason,
                "events": list(self.learned.events),
            }
        return document


@dataclass(slots=True)
class DependencyPlan:
    dependency: Dependency
    weight: Weight
    replication_factor: int
    rf: RfSummary
    mode: Mode
    mode_reason: str
    instances: tuple[InstancePlan, ...]
    actions: tuple[Action, ...]
    notes: tuple[str, ...] = ()  # zone rules that refused or held something back (also in Plan.warnings)

    @property
    def name(self) -> str:
        return self.dependency.name

    @property
    def primary(self) -> InstancePlan | None:
        return next((i for i in self.instances if i.role == "primary"), None)

    def to_dict(self, graph: Graph) -> dict[str, Any]:
        dep, primary = self.dependency, self.primary
        document = {
            "name": dep.name,
            "kind": dep.kind,
            "port": dep.port,
            "tier": dep.tier,
            "weight": self.weight.value,
            "weight_terms": self.weight.terms(graph.policy.weights),
            "replication_factor": self.replication_factor,
            "rf": self.rf.to_dict(),
            "mode": self.mode,
            "mode_reason": self.mode_reason,
            "stateful": dep.stateful,
            "cost": dep.cost,
            "slo": {"latency_ms": dep.slo.latency_ms, "error_ratio": dep.slo.error_ratio},
            "deploy": {
                "command": dep.deploy.rendered_command(dep.port) if dep.deploy.command else None,
                "health_path": dep.deploy.health_path,
            },
            "primary": None
            if primary is None
            else {"host": primary.host, "address": primary.address, "port": dep.port},
            "instances": [i.to_dict() for i in self.instances],
            "actions": [a.to_dict() for a in self.actions],
        }
        if dep.kind == "postgresql":  # the mirror role's streaming replicas: synchronous when no loss is allowed
            document["synchronous"] = graph.policy.replication.data_loss == "none"
        if dep.state is not None:  # only then: plans of graphs without it stay as they were
            document["stateful_commands"] = {
                "promote": list(dep.state.promote),
                "fence": list(dep.state.fence),
                "lag": list(dep.state.lag),
            }
        return document


@dataclass(frozen=True, slots=True)
class Plan:
    graph: Graph
    now: float
    dependencies: tuple[DependencyPlan, ...]
    removed: tuple[Action, ...]
    cycles: tuple[tuple[str, ...], ...]
    budget: Mapping[str, Any]
    warnings: tuple[str, ...]
    next_state: State
    zones: ZoneRules = field(default_factory=ZoneRules)

    def dependency(self, name: str) -> DependencyPlan:
        for item in self.dependencies:
            if item.name == name:
                return item
        raise KeyError(name)

    def actions(self) -> list[Action]:
        return [a for d in self.dependencies for a in d.actions] + list(self.removed)

    def to_dict(self) -> dict[str, Any]:
        graph = self.graph
        counts = {"provision": 0, "keep": 0, "decommission": 0}
        for action in self.actions():
            counts[action.action] += 1
        return {
            "version": PLAN_VERSION,
            "graph": graph.source,
            "now": self.now,
            "summary": {"dependencies": len(self.dependencies), **counts},
            "dependencies": [d.to_dict(graph) for d in self.dependencies],
            "removed": [{"dependency": a.dependency, **a.to_dict()} for a in self.removed],
            "zones": sorted(graph.zones),
            "vms": [
                {"host": vm.host, "address": vm.address, "zone": vm.zone, "capacity": vm.capacity}
                for vm in sorted(graph.vms.values(), key=lambda v: v.host)
            ],
            "load_balancers": [
                {"host": lb.host, "address": lb.address, "zone": lb.zone}
                for lb in sorted(graph.load_balancers.values(), key=lambda lb: lb.host)
            ],
            "routing": _routing(graph),
            "cycles": [list(c) for c in self.cycles],
            "budget": dict(self.budget),
            "warnings": list(self.warnings),
            "state": self.next_state.to_dict(),
        }


def _routing(graph: Graph) -> dict[str, Any]:
    r = graph.policy.routing
    return {
        "max_fails": r.max_fails,
        "fail_timeout": r.fail_timeout,
        "connect_timeout": r.connect_timeout,
        "read_timeout": r.read_timeout,
        "proxy_next_upstream": r.proxy_next_upstream,
    }


@paused_gc()
def compute_plan(
    graph: Graph,
    state: State | None = None,
    health: HealthSnapshot | None = None,
    now: float | None = None,
    *,
    history: Sequence[Failure] = (),
) -> Plan:
    """Plan the fleet. Without `health` every score is unknown (assumed serving, never acted on).

    Without `now`, time is taken to be the latest timestamp in `state` (0 if none): no time has passed,
    so no stabilisation window ends; pass the clock explicitly to let RF come down. Zones that are unhealthy
    or under a zonal shift (`state.zonal_shifts`, expiry after `now`) follow the rules of `zones.py`.
    `history`: the failovers `policy.learning` learns from (learning.py); ignored while it is off.
    """
    state = state or State()
    health = health or HealthSnapshot()
    now = _default_now(state) if now is None else now
    zones = judge_zones(graph, health, state.zonal_shifts, now)
    report = compute_weights(graph)
    weights = report.weights

    rf_results: dict[str, RfResult] = {}
    shi_notes: dict[str, str] = {}
    impacts: dict[float | None, tuple[float, str]] = {}
    for name, dep in graph.dependencies.items():
        previous = state.decisions.get(name)
        prior = previous.system_health_impact if previous else None
        if prior not in impacts:  # one value for the whole fleet, unless zone health is unknown
            impacts[prior] = system_health_impact(health.zones, prior)
        shi, note = impacts[prior]
        shi_notes[name] = note
        rf_results[name] = decide_rf(dep, weights[name].value, shi, graph.policy.replication, previous, now)

    priority = sorted(graph.dependencies, key=lambda n: (-weights[n].value, n))
    learned = _learn(graph, priority, history, now) if graph.policy.learning.enabled else {}
    for name, raised in learned.items():
        rf_results[name] = _rf_with_history(graph, name, raised, weights[name].value, rf_results[name], state, now)
    floors = {name: _min_rf(graph, name, learned) for name in graph.dependencies}
    budget = apply_budget(
        [
            BudgetItem(name, weights[name].value, floors[name], rf_results[name].rf, dep.cost)
            for name, dep in graph.dependencies.items()
        ],
        graph.policy.cost_budget,
    )
    modes = {name: decide_mode(dep, weights[name].value, graph.policy.mode) for name, dep in graph.dependencies.items()}
    for name, raised in learned.items():
        modes[name] = _mode_with_history(graph.dependencies[name], raised, modes[name], graph)
    # Placement's minimum stays the graph's: a learned raise the pool cannot hold is cut (`placement_cut`),
    # never a plan that fails to place its minimum (which names the graph's `replication.min` to fix).
    requests = [
        PlacementRequest(
            n, budget.granted[n], graph.dependencies[n].replication.min_rf, modes[n][0], graph.dependencies[n].stateful
        )
        for n in priority
    ]
    existing = state.instances_by_dependency()
    penalties = placement_penalties(history, now, graph.policy.learning) if graph.policy.learning.enabled else None
    placements = place(graph, requests, existing, health, zones, penalties=penalties)

    names = sorted(graph.dependencies)
    plans = tuple(
        _dependency_plan(
            graph,
            graph.dependencies[name],
            weights[name],
            rf_results[name],
            shi_notes[name],
            budget.cuts.get(name),
            modes[name],
            placements[name],
            learned.get(name),
        )
        for name in names
    )
    removed = _removed(graph, existing)
    warnings = _warnings(report.cycles, budget.floor_over_budget, graph.policy.cost_budget)
    warnings += tuple(
        f"{name}: nothing calls it and it is not an `entry`: impact 0 (add it to a caller's depends_on, "
        "or give it `entry: {rate: N}` if it is called from outside the graph)"
        for name in report.unreached
    )
    warnings += tuple(f"zonal shift of {zone} ignored: the graph has no such zone" for zone in zones.ignored_shifts)
    warnings += tuple(f"{d.name}: {note}" for d in plans for note in d.notes)
    next_state = State(
        instances=tuple(InstanceRecord(d.name, i.host, i.role, i.zone) for d in plans for i in d.instances)
        + tuple(InstanceRecord(a.dependency, a.host, a.role, a.zone) for a in removed if a.action == "keep"),
        decisions={name: rf_results[name].decision for name in names},
    )
    budget_info = {
        "limit": graph.policy.cost_budget,
        "used": budget.used,  # what the budget granted
        # What the plan runs (placement may cut what was granted; parked instances run and cost all the same).
        "placed": round(sum(len(d.instances) * d.dependency.cost for d in plans), 6),
        "cut": {name: budget.cuts[name] for name in sorted(budget.cuts)},
    }
    return Plan(graph, now, plans, removed, report.cycles, budget_info, warnings, next_state, zones)


def _learn(graph: Graph, priority: Sequence[str], history: Sequence[Failure], now: float) -> dict[str, LearnedRf]:
    """The minimum RF the history raises, per dependency it raises (most critical first, so that they take
    the cost budget's room in that order): learning.py's rule, bounded by max, max_raise and the budget."""
    policy = graph.policy.learning
    failed: dict[str, list[Failure]] = {}  # grouped once: a month of a large fleet is ~10^5 failures
    for failure in history:
        failed.setdefault(failure.dependency, []).append(failure)
    budget = graph.policy.cost_budget
    left = None if budget is None else budget - sum(d.replication.min_rf * d.cost for d in graph.dependencies.values())
    found: dict[str, LearnedRf] = {}
    for name in priority:
        if name not in failed:
            continue
        dep = graph.dependencies[name]
        raised = learned_rf(
            name,
            failed[name],
            now,
            policy,
            min_rf=dep.replication.min_rf,
            max_rf=dep.replication.max_rf,
            cost=dep.cost,
            budget_left=left,
            stateful=dep.stateful,
        )
        if raised.raised_by > 0:
            found[name] = raised
            if left is not None:
                left -= raised.raised_by * dep.cost
    return found


def _min_rf(graph: Graph, name: str, learned: Mapping[str, LearnedRf]) -> int:
    raised = learned.get(name)
    return graph.dependencies[name].replication.min_rf if raised is None else raised.min_rf


def _rf_with_history(
    graph: Graph, name: str, raised: LearnedRf, weight: float, plain: RfResult, state: State, now: float
) -> RfResult:
    """The RF rule with the raised minimum: the same hysteresis (up at once, down after the window). When
    the raise is what changes the RF, its reason comes first: `adjust` records it as the `rf_change`'s."""
    dep = graph.dependencies[name]
    floor = dataclasses.replace(dep, replication=dataclasses.replace(dep.replication, min_rf=raised.min_rf))
    previous = state.decisions.get(name)
    result = decide_rf(floor, weight, plain.decision.system_health_impact, graph.policy.replication, previous, now)
    if result.rf != plain.rf:
        events = ", ".join(f"#{event}" for event in raised.events)
        result.reason = (
            f"{raised.reason} (events {events}); {result.reason}" if events else f"{raised.reason}; {result.reason}"
        )
    return result


def _mode_with_history(dep: Dependency, raised: LearnedRf, mode: tuple[Mode, str], graph: Graph) -> tuple[Mode, str]:
    """`policy.learning.active_active`: a raised dependency serves from every instance, where its kind and the
    graph allow it (a mode the graph sets, and the per-instance cost limit, still win)."""
    rules = graph.policy.mode
    if not raised.prefer_active_active or mode[0] == "active-active" or dep.replication.mode != "auto":
        return mode
    if not dep.multi_writer or (rules.active_active_max_cost is not None and dep.cost > rules.active_active_max_cost):
        return mode
    return "active-active", f"history: its minimum RF was raised and policy.learning.active_active is set ({mode[1]})"


def _default_now(state: State) -> float:
    times = [d.decided_at for d in state.decisions.values()]
    times += [d.pending_since for d in state.decisions.values() if d.pending_since is not None]
    return max(times, default=0.0)


def _dependency_plan(
    graph: Graph,
    dep: Dependency,
    weight: Weight,
    rf: RfResult,
    shi_note: str,
    budget_cut: str | None,
    mode: tuple[Mode, str],
    placement: DependencyPlacement,
    learned: LearnedRf | None = None,
) -> DependencyPlan:
    instances: list[InstancePlan] = []
    actions: list[Action] = []
    for s in placement.slots:
        vm = graph.vms.get(s.host)
        status = "existing" if s.existing else "new"
        instances.append(
            InstancePlan(
                s.host,
                s.zone,
                vm.address if vm else None,
                dep.port,
                s.role,
                status,
                s.health,
                s.reason,
                s.counts,
            )
        )
        reason = s.reason
        if s.existing and s.previous_role is not None and s.previous_role != s.role:
            reason += f"; role {s.previous_role} -> {s.role}"
        actions.append(Action("keep" if s.existing else "provision", dep.name, s.host, s.zone, s.role, reason))
    actions += [Action("decommission", dep.name, d.host, d.zone, d.role, d.reason) for d in placement.decommissions]
    summary = RfSummary(
        raw=rf.raw,
        system_health_impact=rf.decision.system_health_impact,
        system_health_note=shi_note,
        decided=rf.rf,
        direction=rf.direction,
        reason=rf.reason,
        min_rf=dep.replication.min_rf,
        max_rf=dep.replication.max_rf,
        budget_cut=budget_cut,
        placement_cut=placement.refused or placement.cut,
        learned=learned,
    )
    placed = sum(1 for i in instances if i.counts)
    return DependencyPlan(
        dep,
        weight,
        placed,
        summary,
        mode[0],
        mode[1],
        tuple(instances),
        tuple(actions),
        tuple(placement.warnings),
    )


def _removed(graph: Graph, existing: Mapping[str, list[InstanceRecord]]) -> tuple[Action, ...]:
    actions: list[Action] = []
    for name in sorted(set(existing) - set(graph.dependencies)):
        for record in sorted(existing[name], key=lambda r: r.host):
            if record.role == "primary":
                reason = "dependency no longer in the graph; the primary is never decommissioned automatically"
                actions.append(Action("keep", name, record.host, record.zone, record.role, reason))
            else:
                actions.append(
                    Action(
                        "decommission",
                        name,
                        record.host,
                        record.zone,
                        record.role,
                        "dependency no longer in the graph",
                    )
                )
    return tuple(actions)


# A warning names this many members of a cycle at most: a 10k-dependency graph had one of 2,000 members, and
# every ansible-inventory run printed all of them. The plan's `cycles` keeps the full list.
CYCLE_MEMBERS_SHOWN = 12


def _warnings(cycles: tuple[tuple[str, ...], ...], floor_over: bool, budget: float | None) -> tuple[str, ...]:
    found = []
    for cycle in cycles:
        shown = " -> ".join(cycle[:CYCLE_MEMBERS_SHOWN])
        if len(cycle) > CYCLE_MEMBERS_SHOWN:
            shown += f" -> ... ({len(cycle)} members; the plan's `cycles` lists them all)"
        found.append(f"dependency cycle: {shown}: criticality flows round it, but never back to where it started")
    if floor_over:
        found.append(f"cost budget {budget:g} is below what the min RFs cost: min RFs kept, budget exceeded")
    return tuple(found)
