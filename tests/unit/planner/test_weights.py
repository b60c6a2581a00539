"""Weights: tier, log-scaled frequency and impact inherited through the graph, cycles handled."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.graph_data import base_graph, build, dependency

from depmirror.planner.weights import compute_weights, frequency_score, strongly_connected_components


def test_a_dependency_a_tier0_service_needs_inherits_its_criticality_through_other_dependencies() -> None:
    report = compute_weights(build(base_graph()))
    sessions = report.weights["sessions"]
    assert sessions.impact == 1.0
    assert sessions.impact_via == "payments"
    assert sessions.impact_source == "shop"
    # tier 2 alone would give 0.4 * 1/3; the inherited impact adds the full 0.4.
    assert sessions.value > 0.4 * (1 / 3) + 0.4 - 1e-9


def test_weight_is_the_documented_sum_of_its_terms() -> None:
    graph = build(base_graph())
    w = compute_weights(graph).weights["payments"]
    c = graph.policy.weights
    assert w.tier == (3 - 1) / 3
    assert math.isclose(w.frequency, math.log1p(100) / math.log1p(1000))
    assert math.isclose(w.value, c.tier * w.tier + c.frequency * w.frequency + c.impact * w.impact, abs_tol=1e-6)


def test_nothing_calls_it_means_no_impact_and_no_frequency() -> None:
    w = compute_weights(build(base_graph())).weights["reports"]
    assert (w.impact, w.frequency, w.consumers, w.impact_via) == (0.0, 0.0, 0, None)
    assert w.value == 0.0


def test_declared_request_rate_wins_over_the_sum_of_calls() -> None:
    data = base_graph()
    data["dependencies"]["payments"]["request_rate"] = 1000
    w = compute_weights(build(data)).weights["payments"]
    assert w.rate == 1000 and w.frequency == 1.0


def test_frequency_is_log_scaled_and_saturates() -> None:
    assert frequency_score(0, 1000) == 0.0
    assert frequency_score(1000, 1000) == 1.0
    assert frequency_score(10**6, 1000) == 1.0
    assert frequency_score(10, 1000) > 0.3  # linear would give 0.01


def test_a_cycle_is_reported_and_its_members_pass_on_what_reaches_them() -> None:
    data = base_graph()
    data["dependencies"]["left"] = dependency(tier=3, port=9201, depends_on={"right": {"rate": 1}})
    data["dependencies"]["right"] = dependency(tier=3, port=9202, depends_on={"left": {"rate": 1}})
    data["services"]["shop"]["depends_on"]["right"] = {"rate": 1}
    report = compute_weights(build(data))
    assert report.cycles == (("left", "right"),)
    right, left = report.weights["right"], report.weights["left"]
    # shop calls right at 1 of its busiest 100 req/s: a hard call passes 0.75 + 0.25 * 0.01 of tier 0.
    assert math.isclose(right.impact, 0.7525)
    assert math.isclose(left.impact, right.impact)  # right calls left at its only (so busiest) rate
    assert (left.impact_via, left.impact_source) == ("right", "shop")
    assert left.in_cycle and not report.weights["payments"].in_cycle


def test_a_self_call_is_a_cycle_too() -> None:
    data = base_graph()
    data["dependencies"]["reports"]["depends_on"] = {"reports": {"rate": 1}}
    assert compute_weights(build(data)).cycles == (("reports",),)


def test_tarjan_handles_a_long_chain_without_recursion() -> None:
    nodes = [f"n{i}" for i in range(20_000)]
    successors = {a: [b] for a, b in itertools.pairwise(nodes)}
    successors[nodes[-1]] = [nodes[0]]
    components = strongly_connected_components(nodes, successors)
    assert len(components) == 1 and len(components[0]) == 20_000


@st.composite
def random_graph(draw: st.DrawFn) -> dict[str, object]:
    data = base_graph()
    count = draw(st.integers(min_value=1, max_value=12))
    names = [f"d{i}" for i in range(count)]
    for i, name in enumerate(names):
        calls = draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
        data["dependencies"][name] = dependency(
            tier=draw(st.integers(0, 3)),
            port=9300 + i,
            request_rate=draw(st.floats(0, 1e6)),
            depends_on={c: {"rate": draw(st.floats(0, 1e4))} for c in calls},
        )
    return data


@settings(max_examples=60, deadline=None)
@given(random_graph())
def test_weights_stay_within_0_and_1_and_a_hard_call_passes_on_three_quarters(data: dict[str, object]) -> None:
    graph = build(data)  # type: ignore[arg-type]
    report = compute_weights(graph)
    weights = report.weights
    for name, w in weights.items():
        assert 0.0 <= w.value <= 1.0
        for edge in graph.dependencies[name].depends_on:
            if edge.dependency == name:
                continue  # a self-call passes nothing: a dependency never takes criticality from itself
            called = weights[edge.dependency]
            # Every call here is hard: it passes on at least 0.75 of the caller's own tier...
            assert called.impact >= 0.75 * w.tier - 1e-9
            # ...and of all its criticality, unless that came round a cycle from the called one itself.
            if not any(name in cycle and edge.dependency in cycle for cycle in report.cycles):
                assert called.impact >= 0.75 * max(w.tier, w.impact) - 1e-9
