"""RF: bounded, dead band, fast up, slow down after a window; the cost budget; the mode."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.graph_data import base_graph, build

from depmirror.graph.model import Dependency, ModeRules, ReplicationPolicy, ReplicationRules
from depmirror.planner.replication import BudgetItem, apply_budget, decide_mode, decide_rf, system_health_impact
from depmirror.planner.state import RfDecision

RULES = ReplicationRules(rf_scale=3.0, tolerance=0.15, stabilisation_window=600.0, scale_down_step=1)


def dep(min_rf: int = 1, max_rf: int = 5, kind: str = "http", mode: str = "auto", cost: float = 1.0) -> Dependency:
    return Dependency(
        name="api",
        tier=1,
        kind=kind,
        port=8080,  # type: ignore[arg-type]
        replication=ReplicationPolicy(min_rf, max_rf, mode),
        cost=cost,  # type: ignore[arg-type]
    )


def previous(rf: int, at: float = 0.0, pending: tuple[int, float] | None = None) -> RfDecision:
    return RfDecision(rf, at, pending[0] if pending else None, pending[1] if pending else None)


def test_first_decision_is_the_ceiling_of_raw_within_bounds() -> None:
    assert decide_rf(dep(), 0.5, 0.0, RULES, None, 0).rf == 2  # 1.5 -> 2
    assert decide_rf(dep(min_rf=3), 0.1, 0.0, RULES, None, 0).rf == 3
    assert decide_rf(dep(max_rf=2), 1.0, 0.0, RULES, None, 0).rf == 2


def test_bad_system_health_raises_rf_as_in_the_seed_rule() -> None:
    healthy = decide_rf(dep(), 0.5, 0.0, RULES, None, 0)
    degraded = decide_rf(dep(), 0.5, 0.5, RULES, None, 0)
    assert (healthy.raw, degraded.raw) == (1.5, 2.25)
    assert degraded.rf == 3 > healthy.rf


def test_dead_band_holds_near_a_boundary_and_goes_up_beyond_it() -> None:
    # current 2: raw 2.1 is within tolerance (ceil(2.1 - 0.15) = 2): hold; raw 2.2 goes up at once.
    assert decide_rf(dep(), 2.1 / 3, 0.0, RULES, previous(2), 10).direction == "hold"
    up = decide_rf(dep(), 2.2 / 3, 0.0, RULES, previous(2), 10)
    assert (up.rf, up.direction, up.decision.decided_at) == (3, "up", 10)
    # current 3: raw 1.9 would be RF 2, but ceil(1.9 + 0.15) = 3: no scale-down wish at all.
    assert decide_rf(dep(), 1.9 / 3, 0.0, RULES, previous(3), 10).direction == "hold"


def test_scale_down_waits_a_full_window_then_steps_by_one() -> None:
    first = decide_rf(dep(), 0.1, 0.0, RULES, previous(4), 100)
    assert (first.rf, first.direction) == (4, "pending-down")
    assert first.decision.pending_since == 100
    still = decide_rf(dep(), 0.1, 0.0, RULES, first.decision, 699)
    assert still.rf == 4
    stepped = decide_rf(dep(), 0.1, 0.0, RULES, still.decision, 700)
    assert (stepped.rf, stepped.direction) == (3, "down")
    assert stepped.decision.pending_since is None
    again = decide_rf(dep(), 0.1, 0.0, RULES, stepped.decision, 701)
    assert again.rf == 3  # the next step needs another window


def test_a_wish_that_goes_away_clears_the_pending_scale_down() -> None:
    pending = decide_rf(dep(), 0.1, 0.0, RULES, previous(3), 0).decision
    back = decide_rf(dep(), 1.0, 0.0, RULES, pending, 300)
    assert back.decision.pending_since is None
    later = decide_rf(dep(), 0.1, 0.0, RULES, back.decision, 700)
    assert later.rf == 3 and later.direction == "pending-down"


def test_unknown_zone_health_keeps_the_previous_impact() -> None:
    assert system_health_impact({"a": None, "b": None}, 0.4) == (0.4, "zone health unknown: kept 0.40")
    assert system_health_impact({}, None)[0] == 0.0
    assert system_health_impact({"a": 1.0, "b": 0.5, "c": None}, 0.9)[0] == 0.25


def test_budget_keeps_every_min_rf_and_gives_mirrors_to_the_most_critical() -> None:
    items = [
        BudgetItem("low", 0.2, 1, 3, 1.0),
        BudgetItem("high", 0.9, 1, 3, 1.0),
        BudgetItem("mid", 0.5, 2, 3, 1.0),
    ]
    result = apply_budget(items, 6.0)  # floor 4, two extras left
    assert result.granted == {"high": 3, "mid": 2, "low": 1}
    assert set(result.cuts) == {"mid", "low"}
    assert "cost budget 6" in result.cuts["low"] and "2 of 2" in result.cuts["low"]
    assert result.used == 6.0 and not result.floor_over_budget


def test_budget_below_the_min_rfs_keeps_them_and_says_so() -> None:
    result = apply_budget([BudgetItem("a", 0.9, 2, 3, 5.0)], 1.0)
    assert result.granted == {"a": 2} and result.floor_over_budget


def test_no_budget_grants_everything() -> None:
    assert apply_budget([BudgetItem("a", 0.1, 1, 3, 9.0)], None).granted == {"a": 3}


def test_mode_rules() -> None:
    rules = ModeRules(active_active_min_weight=0.5, active_active_max_cost=3.0)
    assert decide_mode(dep(kind="redis"), 1.0, rules)[0] == "active-passive"
    assert decide_mode(dep(), 0.4, rules)[0] == "active-passive"
    assert decide_mode(dep(), 0.6, rules)[0] == "active-active"
    assert decide_mode(dep(cost=4.0), 0.9, rules)[0] == "active-passive"
    assert decide_mode(dep(mode="active-passive"), 0.9, rules) == (
        "active-passive",
        "set in the graph file (replication.mode)",
    )


def test_the_example_graph_redis_is_active_passive() -> None:
    graph = build(base_graph())
    sessions = graph.dependencies["sessions"]
    assert decide_mode(sessions, 0.99, graph.policy.mode)[0] == "active-passive"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(0, 4),
    st.floats(0, 1),
    st.floats(0, 1),
    st.none() | st.integers(0, 12),
)
def test_rf_always_within_min_and_max(lo: int, extra: int, weight: float, shi: float, prior: int | None) -> None:
    d = dep(min_rf=lo, max_rf=lo + extra)
    prev = None if prior is None else previous(prior)
    result = decide_rf(d, weight, shi, RULES, prev, 1000)
    assert lo <= result.rf <= lo + extra


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(1, 400), st.floats(0, 1), st.floats(0, 1)),  # time step, weight, system health impact
        min_size=2,
        max_size=30,
    ),
    st.floats(0, 1000),
)
def test_within_the_stabilisation_window_rf_never_goes_down(
    steps: list[tuple[float, float, float]], window: float
) -> None:
    rules = ReplicationRules(rf_scale=3.0, tolerance=0.15, stabilisation_window=window, scale_down_step=1)
    d = dep(min_rf=1, max_rf=6)
    now, decision, last_change = 0.0, None, 0.0
    for step, weight, shi in steps:
        now += step
        result = decide_rf(d, weight, shi, rules, decision, now)
        if decision is not None and result.rf < decision.rf:
            assert now - last_change >= window, "RF went down inside the stabilisation window"
            assert decision.rf - result.rf == 1
        if decision is None or result.rf != decision.rf:
            last_change = now
        decision = result.decision
