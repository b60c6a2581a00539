"""Weights from the graph's structure: soft calls, entry dependencies, graded impact, cycles (docs/graph.md)."""

from __future__ import annotations

import copy
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.graph_data import base_graph, build, dependency

from depmirror.planner.weights import ENTRY, compute_weights, edge_factor


def weights_of(data: dict[str, Any]) -> dict[str, float]:
    return {name: w.value for name, w in compute_weights(build(data)).weights.items()}


def shop(tier: int, rates: dict[str, float]) -> dict[str, Any]:
    """A Sock-Shop-like graph, every node at one tier: front-end (an entry) -> orders -> payment, and an
    optional recommendations leaf that the front-end calls softly."""
    data = base_graph()
    data["services"] = {}
    calls = {
        "catalogue": {"rate": rates["catalogue"]},
        "orders": {"rate": rates["orders"]},
        "recommendations": {"rate": rates["recommendations"], "required": False},
    }
    data["dependencies"] = {
        "front-end": dependency(tier, 9100, entry={"rate": rates["entry"]}, depends_on=calls),
        "catalogue": dependency(tier, 9101),
        "orders": dependency(
            tier, 9102, depends_on={"payment": {"rate": rates["payment"]}, "user": {"rate": rates["user"]}}
        ),
        "payment": dependency(tier, 9103),
        "user": dependency(tier, 9104),
        "recommendations": dependency(tier, 9105),
    }
    return data


RATE = st.floats(min_value=0.01, max_value=1e5)
SHOP_RATES = st.fixed_dictionaries(
    {key: RATE for key in ("entry", "catalogue", "orders", "recommendations", "payment", "user")}
)


@settings(max_examples=80, deadline=None)
@given(SHOP_RATES)
def test_with_uniform_tier_0_what_every_checkout_needs_outranks_a_soft_leaf_at_any_rates(
    rates: dict[str, float],
) -> None:
    weights = weights_of(shop(0, rates))
    assert weights["payment"] > weights["recommendations"]
    assert weights["orders"] > weights["recommendations"]


def test_with_uniform_tiers_the_shop_ranks_checkout_above_the_optional_leaf_at_every_tier_but_3() -> None:
    # The rates of the shop: the leaf is the busiest call, checkout a small share of the traffic.
    rates = {"entry": 500, "catalogue": 400, "orders": 20, "recommendations": 300, "payment": 20, "user": 20}
    for tier in (0, 1, 2):
        weights = weights_of(shop(tier, rates))
        assert weights["payment"] > weights["recommendations"], tier
    # At tier 3 nothing is critical, so no criticality flows: only frequency ranks (docs/graph.md).
    weights = weights_of(shop(3, rates))
    assert weights["payment"] < weights["recommendations"]


@st.composite
def graph_and_call(draw: st.DrawFn) -> tuple[dict[str, Any], str, str, float]:
    """A random graph of dependencies, and a hard call to add: from a caller at a rate within its busiest."""
    data = base_graph()
    count = draw(st.integers(min_value=2, max_value=9))
    names = [f"d{i}" for i in range(count)]
    for i, name in enumerate(names):
        calls = draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
        spec = dependency(
            tier=draw(st.integers(0, 3)),
            port=9300 + i,
            depends_on={c: {"rate": draw(st.floats(0.1, 1e4)), "required": draw(st.booleans())} for c in calls},
        )
        if draw(st.booleans()):
            spec["entry"] = {"rate": draw(st.floats(0, 1e3))}
        if draw(st.booleans()):
            spec["request_rate"] = draw(st.floats(1, 1e4))
        data["dependencies"][name] = spec
    callee = draw(st.sampled_from(names))
    caller = draw(st.sampled_from(["new-caller", *names]))
    return data, caller, callee, draw(st.floats(0.1, 1e4))


@settings(max_examples=120, deadline=None)
@given(graph_and_call(), st.integers(0, 3))
def test_adding_a_hard_caller_never_lowers_a_weight(case: tuple[dict[str, Any], str, str, float], tier: int) -> None:
    data, caller, callee, rate = case
    before = weights_of(data)
    after_data = copy.deepcopy(data)
    if caller == "new-caller":
        after_data["services"]["new-caller"] = {"tier": tier, "depends_on": {callee: {"rate": rate}}}
    else:
        spec = after_data["dependencies"][caller]
        calls = spec.setdefault("depends_on", {})
        if callee in calls or caller == callee:
            return
        # Within the caller's busiest call (or its declared request rate): the shares of its other calls stay.
        busiest = spec.get("request_rate") or max((c["rate"] for c in calls.values()), default=0.0)
        calls[callee] = {"rate": min(rate, busiest) if busiest else rate}
    after = weights_of(after_data)
    for name, value in before.items():
        assert after[name] >= value - 1e-9, name


@settings(max_examples=120, deadline=None)
@given(graph_and_call())
def test_marking_a_call_soft_never_raises_a_weight(case: tuple[dict[str, Any], str, str, float]) -> None:
    data = case[0]
    hard = [(name, target) for name, spec in data["dependencies"].items() for target in spec.get("depends_on", {})]
    if not hard:
        return
    name, target = hard[len(hard) // 2]
    data["dependencies"][name]["depends_on"][target]["required"] = True
    before = weights_of(data)
    data["dependencies"][name]["depends_on"][target]["required"] = False
    after = weights_of(data)
    assert after[target] <= before[target] + 1e-9
    assert all(after[n] <= before[n] + 1e-9 for n in before)


@settings(max_examples=120, deadline=None)
@given(graph_and_call())
def test_no_dependency_takes_criticality_from_itself(case: tuple[dict[str, Any], str, str, float]) -> None:
    for name, w in compute_weights(build(case[0])).weights.items():
        assert w.impact_source != name and w.impact_via != name


def test_a_call_back_into_a_critical_caller_does_not_raise_the_callee() -> None:
    data = base_graph()
    data["dependencies"]["gateway"] = dependency(0, 9400, entry={"rate": 100}, depends_on={"audit": {"rate": 10}})
    data["dependencies"]["audit"] = dependency(2, 9401)
    alone = compute_weights(build(data)).weights
    data["dependencies"]["audit"]["depends_on"] = {"gateway": {"rate": 1}}
    looped = compute_weights(build(data))
    assert looped.cycles == (("audit", "gateway"),)
    assert looped.weights["audit"].value == alone["audit"].value
    # The gateway takes from audit only audit's own tier 2 (a hard call of share 1), never its own tier 0 back.
    gateway = looped.weights["gateway"]
    assert (gateway.impact_via, gateway.impact_source) == (ENTRY, ENTRY)  # its entry (own tier 0) is higher
    data["dependencies"]["gateway"].pop("entry")
    gateway = compute_weights(build(data)).weights["gateway"]
    assert (gateway.impact_via, gateway.impact_source) == ("audit", "audit")
    assert math.isclose(gateway.impact, 1 / 3)


def test_an_entry_dependency_is_as_critical_as_its_tier_without_a_made_up_consumer() -> None:
    data = base_graph()
    data["dependencies"]["front"] = dependency(0, 9400, entry={"rate": 500})
    made_up = copy.deepcopy(data)
    made_up["dependencies"]["front"].pop("entry")
    made_up["services"]["users"] = {"tier": 0, "depends_on": {"front": {"rate": 500}}}
    entry = compute_weights(build(data))
    assert entry.weights["front"].value == compute_weights(build(made_up)).weights["front"].value
    assert entry.weights["front"].rate == 500 and entry.weights["front"].impact_via == ENTRY
    assert "front" not in entry.unreached and entry.unreached == ("reports",)


def test_impact_is_graded_by_share_and_hardness() -> None:
    data = base_graph()
    data["services"]["shop"]["depends_on"].update(
        {"reports": {"rate": 25}, "sessions": {"rate": 100, "required": False}}
    )
    weights = compute_weights(build(data)).weights
    assert math.isclose(weights["reports"].impact, edge_factor(0.25, True))  # 0.8125 of tier 0
    assert weights["reports"].impact_factor == edge_factor(0.25, True)
    # sessions: soft from shop (0.25), hard through payments (crit 1 * 1.0): the hard path wins.
    assert weights["sessions"].impact_via == "payments" and weights["sessions"].impact == 1.0
    assert edge_factor(1.0, False) < edge_factor(0.0, True)  # any hard call passes more than any soft one
