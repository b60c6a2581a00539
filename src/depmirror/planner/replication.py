"""Replication factor (with hysteresis and a cost budget) and mode of each dependency.

The seed's rule `weight * (1 + system_health_impact)` made safe:
- raw = rf_scale * weight * (1 + system_health_impact), bounded by the dependency's min/max RF;
- dead band: RF goes up only when ceil(raw - tolerance) exceeds it, down only when ceil(raw + tolerance)
  is below it, so a raw value hovering near a boundary does not flap;
- fast up (at once), slow down: a lower RF must have been wanted for a whole stabilisation window, then
  RF drops by at most `scale_down_step`, and the next step waits another window;
- cost budget: nothing drops below its min RF; above that, the most critical keep their mirrors.
The previous decision is an input (`RfDecision`) and the new one an output, so callers persist it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from depmirror.graph.model import Dependency, Mode, ModeRules, ReplicationRules
from depmirror.planner.state import RfDecision

_EPS = 1e-9


@dataclass(slots=True)
class RfResult:
    rf: int
    raw: float
    direction: str  # new, up, down, hold, pending-down, clamped
    reason: str
    decision: RfDecision


@dataclass(slots=True)
class BudgetItem:
    name: str
    weight: float
    min_rf: int
    wanted: int
    cost: float


@dataclass(frozen=True, slots=True)
class BudgetResult:
    granted: Mapping[str, int]
    cuts: Mapping[str, str]
    used: float
    floor_over_budget: bool


def system_health_impact(zone_health: Mapping[str, float | None], previous: float | None) -> tuple[float, str]:
    """1 - mean known zone health. With no known zone, keep the previous value: unknown moves nothing."""
    known = [score for score in zone_health.values() if score is not None]
    if not known:
        kept = previous or 0.0
        return kept, f"zone health unknown: kept {kept:.2f}"
    value = round(1.0 - sum(known) / len(known), 6)
    return value, f"1 - mean health of {len(known)} zone(s)"


def _ceil(value: float) -> int:
    return math.ceil(value - _EPS)


def decide_rf(
    dep: Dependency,
    weight: float,
    shi: float,
    rules: ReplicationRules,
    previous: RfDecision | None,
    now: float,
) -> RfResult:
    lo, hi = dep.replication.min_rf, dep.replication.max_rf
    raw = rules.rf_scale * weight * (1.0 + shi)
    if previous is None:
        rf = _bounded(raw, lo, hi)
        return _result(rf, raw, shi, now, previous, "new", f"first decision: ceil({raw:.3f}) within [{lo}, {hi}]")
    current = previous.rf
    if current < lo or current > hi:
        rf = min(hi, max(lo, current))
        why = f"previous RF {current} outside [{lo}, {hi}] (policy changed): now {rf}"
        return _result(rf, raw, shi, now, previous, "clamped", why)
    up, down = _bounded(raw - rules.tolerance, lo, hi), _bounded(raw + rules.tolerance, lo, hi)
    if up > current:
        why = f"raw {raw:.3f} above {current} + tolerance {rules.tolerance}: scale up at once"
        return _result(up, raw, shi, now, previous, "up", why)
    if down >= current:
        return _result(current, raw, shi, now, previous, "hold", f"raw {raw:.3f} within tolerance of RF {current}")
    since = previous.pending_since if previous.pending_since is not None else now
    wanted = max(down, previous.pending_rf) if previous.pending_rf is not None else down
    ends = since + rules.stabilisation_window
    if now >= ends:
        rf = max(wanted, current - rules.scale_down_step)
        why = f"RF {wanted} or lower wanted since {since:.0f} for the whole window: step down"
        return _result(rf, raw, shi, now, previous, "down", why)
    why = f"RF {wanted} wanted since {since:.0f}; kept at {current} until the window ends at {ends:.0f}"
    return _result(current, raw, shi, now, previous, "pending-down", why, (wanted, since))


def _bounded(value: float, lo: int, hi: int) -> int:
    return min(hi, max(lo, _ceil(value)))


def _result(
    rf: int,
    raw: float,
    shi: float,
    now: float,
    previous: RfDecision | None,
    direction: str,
    reason: str,
    pending: tuple[int, float] | None = None,
) -> RfResult:
    unchanged = previous is not None and rf == previous.rf
    decision = RfDecision(
        rf=rf,
        decided_at=previous.decided_at if unchanged and previous is not None else now,
        pending_rf=pending[0] if pending else None,
        pending_since=pending[1] if pending else None,
        system_health_impact=shi,
    )
    return RfResult(rf, round(raw, 6), direction, reason, decision)


def apply_budget(items: Sequence[BudgetItem], budget: float | None) -> BudgetResult:
    """Grant instances within the budget: min RFs first, then extras by weight (highest first)."""
    wanted = {item.name: item.wanted for item in items}
    if budget is None:
        return BudgetResult(wanted, {}, sum(i.wanted * i.cost for i in items), False)
    floor = sum(item.min_rf * item.cost for item in items)
    remaining = budget - floor
    granted: dict[str, int] = {}
    cuts: dict[str, str] = {}
    for item in sorted(items, key=lambda i: (-i.weight, i.name)):
        extras = item.wanted - item.min_rf
        affordable = extras if item.cost <= 0 else max(0, int((remaining + _EPS) // item.cost))
        grant = min(extras, affordable)
        remaining -= grant * item.cost
        granted[item.name] = item.min_rf + grant
        if grant < extras:
            cuts[item.name] = (
                f"cost budget {budget:g}: {extras - grant} of {extras} mirror(s) above min RF cut "
                f"(cost {item.cost:g} each; more critical dependencies were served first)"
            )
    used = sum(granted[i.name] * i.cost for i in items)
    return BudgetResult(granted, cuts, round(used, 6), floor > budget + _EPS)


def decide_mode(dep: Dependency, weight: float, rules: ModeRules) -> tuple[Mode, str]:
    if not dep.multi_writer:
        # A second writer would split the data; only a kind that says it takes writes everywhere is exempt.
        what = dep.kind if dep.state is None else f"{dep.kind} with a `stateful:` block"
        return "active-passive", f"{what} is stateful: one writer, standbys replicate from the primary"
    if dep.replication.mode != "auto":
        return dep.replication.mode, "set in the graph file (replication.mode)"
    if weight < rules.active_active_min_weight:
        return (
            "active-passive",
            f"weight {weight:.3f} < {rules.active_active_min_weight}: standbys are enough",
        )
    if rules.active_active_max_cost is not None and dep.cost > rules.active_active_max_cost:
        return "active-passive", f"cost {dep.cost:g} > {rules.active_active_max_cost:g} per instance"
    return "active-active", f"weight {weight:.3f} >= {rules.active_active_min_weight}: all instances serve"
