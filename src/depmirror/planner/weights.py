"""Weight (criticality, 0..1) of every dependency, with the terms that explain it.

weight = c_tier * tier + c_frequency * frequency + c_impact * impact, where
- tier      = (3 - tier) / 3                           (tier 0 -> 1.0, tier 3 -> 0.0)
- frequency = min(1, log(1 + rate) / log(1 + reference_rate)); rate = request_rate, or the calls into it
              plus its `entry` rate
- impact    = what its callers stand to lose, graded: through a call c -> d, d takes
              criticality(c) * factor(c -> d), where criticality(x) = max(tier(x), impact(x)) and
                factor = 0.75 + 0.25 * share   for a hard call (the default, `required: true`)
                factor = 0.25 * share          for a soft one (`required: false`: the caller degrades)
                share  = min(1, rate of the call / the caller's request_rate, or its busiest call's rate)
              An `entry` dependency (called from outside the graph) takes its own tier as its outside
              callers' criticality, through a hard call of share 1. impact = the best of these.
So a hard call passes on at least three quarters of its caller's criticality and a soft one at most a
quarter: with uniform tiers, what every checkout needs outranks an optional leaf however busy the leaf.

The share is measured against the caller's own calls (or its declared request_rate), never against the
calls into it: adding a caller to a dependency must not lower what that dependency passes on.

Impact flows from consumers to what they call, components in topological order (Tarjan, iterative). In
a cycle every member reaches every other, but a member never takes criticality from itself: its impact is
the best chain of calls into it that starts anywhere but at itself. Each member keeps its two best labels
of distinct origin (a widest-path search, factors <= 1), which is enough to answer "best from anywhere
else" for each. Cycles are reported, not rejected.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from depmirror.graph.model import Graph, WeightPolicy

HARD_FLOOR = 0.75  # the least share of its caller's criticality a hard call passes on
SOFT_CEILING = 0.25  # the most a soft call passes on
ENTRY = "(entry)"  # impact_via and impact_source of impact from callers outside the graph


@dataclass(slots=True)
class Weight:
    value: float
    tier: float
    frequency: float
    impact: float
    rate: float
    consumers: int
    impact_via: str | None
    impact_source: str | None
    in_cycle: bool
    impact_factor: float | None = None  # factor of the call the impact came through
    entry_rate: float | None = None

    def terms(self, policy: WeightPolicy) -> dict[str, object]:
        return {
            "tier": round(self.tier, 4),
            "frequency": round(self.frequency, 4),
            "impact": round(self.impact, 4),
            "coefficients": {"tier": policy.tier, "frequency": policy.frequency, "impact": policy.impact},
            "rate": self.rate,
            "consumers": self.consumers,
            "impact_via": self.impact_via,
            "impact_source": self.impact_source,
            "impact_factor": None if self.impact_factor is None else round(self.impact_factor, 4),
            "entry_rate": self.entry_rate,
            "in_cycle": self.in_cycle,
        }


@dataclass(frozen=True, slots=True)
class WeightReport:
    weights: Mapping[str, Weight]
    cycles: tuple[tuple[str, ...], ...]
    unreached: tuple[str, ...] = ()  # dependencies nothing calls that are not `entry`: impact 0


def tier_score(tier: int) -> float:
    return (3 - tier) / 3


def frequency_score(rate: float, reference_rate: float) -> float:
    return min(1.0, math.log1p(rate) / math.log1p(reference_rate))


def edge_factor(share: float, required: bool) -> float:
    """The part of its caller's criticality a call passes on (hard: 0.75..1, soft: 0..0.25)."""
    if required:
        return HARD_FLOOR + (1.0 - HARD_FLOOR) * share
    return SOFT_CEILING * share


class _Label(NamedTuple):
    """Criticality arriving at a node: its value, where it started (`origin`) and the caller it came through.

    A tuple, not a dataclass: a 10k-dependency graph makes ~50k of them (docs/performance.md, "Planning").
    """

    value: float
    origin: str
    via: str | None
    factor: float | None


# Per dependency, each call into it: (caller, factor of that call).
_Calls = Mapping[str, list[tuple[str, float]]]


def compute_weights(graph: Graph) -> WeightReport:
    edges = graph.edges()
    calls: dict[str, list[str]] = {name: [] for name in (*graph.services, *graph.dependencies)}
    incoming_rate: dict[str, float] = dict.fromkeys(graph.dependencies, 0.0)
    base: dict[str, float] = dict.fromkeys(calls, 0.0)  # a caller's busiest call...
    for edge in edges:
        calls[edge.consumer].append(edge.dependency)
        incoming_rate[edge.dependency] += edge.rate
        if edge.rate > base[edge.consumer]:
            base[edge.consumer] = edge.rate
    for name, dep in graph.dependencies.items():
        if dep.request_rate:  # ...or its declared request rate: the share of its requests that make the call
            base[name] = dep.request_rate
    into: dict[str, list[tuple[str, float]]] = {name: [] for name in graph.dependencies}
    for edge in edges:
        caller_rate = base[edge.consumer]
        share = 1.0 if caller_rate <= 0 or edge.rate >= caller_rate else edge.rate / caller_rate
        into[edge.dependency].append((edge.consumer, edge_factor(share, edge.required)))

    components = strongly_connected_components(sorted(calls), calls)
    own = {name: tier_score(node.tier) for name, node in graph.services.items()}
    own.update({name: tier_score(node.tier) for name, node in graph.dependencies.items()})
    entries = {name for name, dep in graph.dependencies.items() if dep.entry_rate is not None}
    best = _propagate(own, components, into, entries)

    cyclic = [c for c in components if len(c) > 1 or c[0] in calls[c[0]]]
    in_cycle = {name for component in cyclic for name in component}
    policy = graph.policy.weights
    scale = math.log1p(policy.reference_rate)
    weights: dict[str, Weight] = {}
    for name, dep in graph.dependencies.items():
        rate = dep.request_rate if dep.request_rate is not None else incoming_rate[name] + (dep.entry_rate or 0.0)
        tier = own[name]
        freq = min(1.0, math.log1p(rate) / scale)
        label = best.get(name)
        impact = label.value if label else 0.0
        value = policy.tier * tier + policy.frequency * freq + policy.impact * impact
        weights[name] = Weight(
            value=round(min(1.0, max(0.0, value)), 6),
            tier=tier,
            frequency=freq,
            impact=impact,
            rate=rate,
            consumers=len(into[name]),
            impact_via=label.via if label else None,
            impact_source=label.origin if label else None,
            in_cycle=name in in_cycle,
            impact_factor=label.factor if label else None,
            entry_rate=dep.entry_rate,
        )
    cycles = tuple(sorted(tuple(sorted(c)) for c in cyclic))
    unreached = tuple(sorted(name for name in graph.dependencies if not into[name] and name not in entries))
    return WeightReport(weights=weights, cycles=cycles, unreached=unreached)


def _propagate(
    own: Mapping[str, float], components: list[list[str]], into: _Calls, entries: set[str]
) -> dict[str, _Label]:
    """The label each dependency's impact comes from (absent: impact 0), never one that starts at itself."""
    crit: dict[str, float] = {}
    origin: dict[str, str] = {}  # where a node's criticality starts: itself, or its impact's origin
    best: dict[str, _Label] = {}
    # Tarjan emits a component after everything it calls: reversed, consumers come first.
    for component in reversed(components):
        members = set(component)
        outside: dict[str, _Label] = {}
        for name in component:
            # The best call from outside the component (the first of equals), or the entry's if higher.
            best_value, best_caller, best_passes = -1.0, "", 0.0
            for caller, passes in into.get(name, ()):
                if caller not in members and crit[caller] * passes > best_value:
                    best_value, best_caller, best_passes = crit[caller] * passes, caller, passes
            if name in entries and own[name] >= best_value:
                outside[name] = _Label(own[name], ENTRY, ENTRY, 1.0)
            elif best_caller:
                outside[name] = _Label(best_value, origin[best_caller], best_caller, best_passes)
        if len(component) > 1:
            best.update(_within_cycle(own, component, members, outside, into))
        else:
            best.update(outside)
        for name in component:
            label = best.get(name)
            impact = label.value if label else 0.0
            crit[name] = max(own[name], impact)
            origin[name] = name if own[name] >= impact or label is None else label.origin
    return best


def _within_cycle(
    own: Mapping[str, float],
    component: list[str],
    members: set[str],
    outside: Mapping[str, _Label],
    into: _Calls,
) -> dict[str, _Label]:
    """For each member, the best label that did not start at the member itself.

    Widest path with factors <= 1 (a label never grows along a chain), so labels settle best first; each
    member settles at most two labels of distinct origins, and one of them did not start at it.
    """
    calls_within: dict[str, list[tuple[str, float]]] = {name: [] for name in component}
    for name in component:
        for caller, passes in into.get(name, ()):
            if caller in members and caller != name:
                calls_within[caller].append((name, passes))
    # Heap entries: (-value, order, node, origin, via, factor); a label is built only when it settles.
    heap: list[tuple[float, int, str, str, str | None, float | None]] = []
    for name in sorted(component):
        heap.append((-own[name], len(heap), name, name, None, None))
        if name in outside:
            label = outside[name]
            heap.append((-label.value, len(heap), name, label.origin, label.via, label.factor))
    heapq.heapify(heap)
    counter = len(heap)
    settled: dict[str, list[_Label]] = {name: [] for name in component}
    while heap:
        negative, _, name, start, via, factor = heapq.heappop(heap)
        kept = settled[name]
        if len(kept) >= 2 or (kept and kept[0].origin == start):
            continue
        kept.append(_Label(-negative, start, via, factor))
        for callee, passes in calls_within[name]:
            taken = settled[callee]
            if len(taken) >= 2 or (taken and taken[0].origin == start):
                continue  # it can take no more labels, or already has a better one from the same origin
            heapq.heappush(heap, (negative * passes, counter, callee, start, name, passes))
            counter += 1
    result: dict[str, _Label] = {}
    for name in component:
        usable = [label for label in settled[name] if label.origin != name]
        if usable:
            result[name] = usable[0]
    return result


def strongly_connected_components(nodes: Iterable[str], successors: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm without recursion (graphs of 10k+ nodes would exceed Python's stack).

    Components come out in reverse topological order: each after every component it points to.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = successors.get(node, [])
            while position < len(children):
                child = children[position]
                position += 1
                if child not in index:
                    work.append((node, position))
                    work.append((child, 0))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return components
