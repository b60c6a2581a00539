"""Weight (criticality, 0..1) of every dependency, with the terms that explain it.

weight = c_tier * tier + c_frequency * frequency + c_impact * impact, where
- tier      = (3 - tier) / 3                           (tier 0 -> 1.0, tier 3 -> 0.0)
- frequency = min(1, log(1 + rate) / log(1 + reference_rate))
- impact    = the highest criticality among its consumers, transitively: criticality(x) =
              max(tier(x), impact(x)), so a dependency a tier-0 service needs (even through others)
              has impact 1.0.

Impact flows from consumers to what they call in one topological pass. Cycles are found as strongly
connected components (Tarjan, iterative): inside a cycle every member reaches every other, so all of
them share the cycle's highest criticality. Cycles are reported, not rejected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from depmirror.graph.model import Graph, WeightPolicy


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
            "in_cycle": self.in_cycle,
        }


@dataclass(frozen=True, slots=True)
class WeightReport:
    weights: Mapping[str, Weight]
    cycles: tuple[tuple[str, ...], ...]


def tier_score(tier: int) -> float:
    return (3 - tier) / 3


def frequency_score(rate: float, reference_rate: float) -> float:
    return min(1.0, math.log1p(rate) / math.log1p(reference_rate))


def compute_weights(graph: Graph) -> WeightReport:
    calls: dict[str, list[str]] = {name: [] for name in (*graph.services, *graph.dependencies)}
    callers: dict[str, list[str]] = {name: [] for name in graph.dependencies}
    incoming_rate: dict[str, float] = dict.fromkeys(graph.dependencies, 0.0)
    for edge in graph.edges():
        calls[edge.consumer].append(edge.dependency)
        callers[edge.dependency].append(edge.consumer)
        incoming_rate[edge.dependency] += edge.rate

    components = strongly_connected_components(sorted(calls), calls)
    own = {name: tier_score(node.tier) for name, node in graph.services.items()}
    own.update({name: tier_score(node.tier) for name, node in graph.dependencies.items()})
    impact, via, source = _propagate(own, components, callers, calls)

    cyclic = [c for c in components if len(c) > 1 or c[0] in calls[c[0]]]
    in_cycle = {name for component in cyclic for name in component}
    policy = graph.policy.weights
    scale = math.log1p(policy.reference_rate)
    weights: dict[str, Weight] = {}
    for name, dep in graph.dependencies.items():
        rate = dep.request_rate if dep.request_rate is not None else incoming_rate[name]
        tier = own[name]
        freq = min(1.0, math.log1p(rate) / scale)
        value = policy.tier * tier + policy.frequency * freq + policy.impact * impact[name]
        weights[name] = Weight(
            value=round(min(1.0, max(0.0, value)), 6),
            tier=tier,
            frequency=freq,
            impact=impact[name],
            rate=rate,
            consumers=len(callers[name]),
            impact_via=via.get(name),
            impact_source=source.get(name),
            in_cycle=name in in_cycle,
        )
    cycles = tuple(sorted(tuple(sorted(c)) for c in cyclic))
    return WeightReport(weights=weights, cycles=cycles)


def _propagate(
    own: Mapping[str, float],
    components: list[list[str]],
    callers: Mapping[str, list[str]],
    calls: Mapping[str, list[str]],
) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """Impact per node, the consumer it came through, and the node whose own tier is its origin."""
    crit: dict[str, float] = {}
    impact: dict[str, float] = {}
    via: dict[str, str] = {}
    source: dict[str, str] = {}
    # Tarjan emits a component after everything it calls: reversed, consumers come first.
    for component in reversed(components):
        members = set(component)
        for name in component:
            best, best_via = 0.0, None
            for caller in callers.get(name, ()):
                if caller not in members and (best_via is None or crit[caller] > best):
                    best, best_via = crit[caller], caller
            impact[name] = best
            if best_via is not None:
                via[name] = best_via
                source[name] = _origin(own, best_via, impact, source)
        cyclic = len(component) > 1 or component[0] in calls[component[0]]
        if cyclic:
            _share_within_cycle(own, component, impact, via, source)
        for name in component:
            crit[name] = max(own[name], impact[name])
    return impact, via, source


def _share_within_cycle(
    own: Mapping[str, float],
    component: list[str],
    impact: dict[str, float],
    via: dict[str, str],
    source: dict[str, str],
) -> None:
    top_name = max(sorted(component), key=lambda n: max(own[n], impact[n]))
    top = max(own[top_name], impact[top_name])
    top_source = _origin(own, top_name, impact, source)
    for name in component:
        if top > impact[name]:
            impact[name] = top
            via[name] = top_name
            source[name] = top_source


def _origin(own: Mapping[str, float], name: str, impact: Mapping[str, float], source: Mapping[str, str]) -> str:
    """The node whose own tier gives `name` its criticality: itself, or where its impact came from."""
    if own[name] >= impact.get(name, 0.0):
        return name
    return source.get(name, name)


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
