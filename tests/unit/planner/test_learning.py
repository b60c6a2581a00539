"""Learning from the history (planner/learning.py): each rule, the decay, the bounds (max, max_raise, the
cost budget), placement penalties, and properties that hold for any history."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depmirror.errors import ConfigError
from depmirror.planner.learning import (
    Failure,
    LearningPolicy,
    burst,
    decay,
    learned_rf,
    placement_penalties,
)

DAY = 86400.0
NOW = 100 * DAY
ON = LearningPolicy(enabled=True)  # 14d window, 3d half-life, 3 failovers per step, max_raise 2


def failovers(count: int, *, ago: float = 0.0, dependency: str = "payments", host: str = "vm-a1") -> list[Failure]:
    return [
        Failure(time=NOW - ago - i * 60, dependency=dependency, host=host, zone="zone-a", event_id=i + 1)
        for i in range(count)
    ]


def rf(failures: list[Failure], policy: LearningPolicy = ON, **kw: object) -> object:
    args = {"min_rf": 1, "max_rf": 5, "cost": 1.0, "budget_left": None, **kw}
    return learned_rf("payments", failures, NOW, policy, **args)  # type: ignore[arg-type]


def test_off_unless_enabled() -> None:
    assert rf(failovers(10), LearningPolicy()).min_rf == 1


def test_three_recent_failovers_raise_the_minimum_by_one_and_cite_them() -> None:
    learned = rf(failovers(3))
    assert learned.min_rf == 2 and learned.raised_by == 1
    assert learned.events == (1, 2, 3)
    assert learned.reason.startswith("history: 3 failovers within 14d") and "1 -> 2" in learned.reason


def test_two_are_not_enough_and_other_dependencies_do_not_count() -> None:
    assert rf(failovers(2)).raised_by == 0
    assert rf(failovers(2) + failovers(5, dependency="sessions")).raised_by == 0


def test_decay_by_half_life_brings_it_back() -> None:
    assert rf(failovers(6, ago=0)).raised_by == 2
    # One half-life of quiet: half the effect (2 -> 1); three: an eighth (rounds to nothing).
    assert rf(failovers(6, ago=3 * DAY)).raised_by == 1
    assert rf(failovers(6, ago=9 * DAY)).raised_by == 0
    assert rf(failovers(3, ago=3 * DAY)).raised_by == 1, "half of one step rounds up"
    assert rf(failovers(3, ago=4 * DAY)).raised_by == 0
    assert decay(3 * DAY, ON) == pytest.approx(0.5)


def test_failovers_count_in_a_window_ending_at_the_newest() -> None:
    spread = [Failure(time=NOW - i * 8 * DAY, dependency="payments", host="vm-a1") for i in range(3)]
    assert burst((f.time for f in spread), NOW, ON) == (2, NOW), "16 days apart: not in one 14d window"
    assert rf(spread).raised_by == 0
    assert burst([NOW + 60], NOW, ON) == (0, None), "a future time is not a failure yet"


def test_bounded_by_max_raise_max_and_the_budget() -> None:
    assert rf(failovers(30)).raised_by == 2, "max_raise"
    held = rf(failovers(30), max_rf=2)
    assert held.min_rf == 2 and "held by max 2" in held.reason
    budget = rf(failovers(30), cost=2.0, budget_left=3.0)
    assert budget.raised_by == 1 and "held by the cost budget" in budget.reason
    assert rf(failovers(30), budget_left=-4.0).min_rf == 1, "over budget already: nothing added"


def test_active_active_only_for_stateless_kinds() -> None:
    policy = LearningPolicy(enabled=True, active_active=True)
    assert rf(failovers(3), policy).prefer_active_active is True
    assert rf(failovers(3), policy, stateful=True).prefer_active_active is False
    assert rf(failovers(1), policy).prefer_active_active is False, "nothing learned, nothing preferred"


def test_placement_penalties_for_a_failing_vm_and_zone() -> None:
    history = failovers(3, host="vm-a1") + failovers(1, host="vm-b1", dependency="sessions")
    penalties = placement_penalties(history, NOW, ON)
    assert penalties.vms == {"vm-a1": 0.5}  # 3 failures from 2 on: (3 - 2 + 1) * 0.25, just now
    assert "vm-b1" not in penalties.vms
    assert penalties.zones == {"zone-a": 0.75}
    assert penalties.events["vm:vm-a1"] == (1, 2, 3)
    assert placement_penalties(failovers(3, ago=3 * DAY), NOW, ON).vms == {"vm-a1": 0.25}, "halved"
    assert placement_penalties(failovers(3, ago=15 * DAY), NOW, ON).vms == {}, "decayed away"
    assert placement_penalties(history, NOW, LearningPolicy()).vms == {}


def test_policy_from_the_graph_mapping() -> None:
    policy = LearningPolicy.from_dict({"enabled": True, "window": "7d", "half_life": "12h", "max_raise": 1})
    assert (policy.window_s, policy.half_life_s, policy.max_raise) == (7 * DAY, 43200.0, 1)
    assert LearningPolicy.from_dict(None) == LearningPolicy()
    with pytest.raises(ConfigError, match=r"policy\.learning\.window"):
        LearningPolicy.from_dict({"window": "soon"})


history = st.lists(
    st.builds(
        Failure,
        time=st.floats(min_value=NOW - 30 * DAY, max_value=NOW + DAY),
        dependency=st.sampled_from(["payments", "sessions"]),
        host=st.sampled_from(["vm-a1", "vm-b1"]),
        zone=st.sampled_from(["zone-a", None]),
        event_id=st.integers(1, 10_000),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    failures=history,
    min_rf=st.integers(1, 4),
    spread=st.integers(0, 4),
    cost=st.floats(min_value=0.1, max_value=10),
    budget=st.one_of(st.none(), st.floats(min_value=-10, max_value=50)),
    max_raise=st.integers(0, 10),
    half_life=st.floats(min_value=60, max_value=30 * DAY),
)
def test_never_above_max_nor_the_budget(
    failures: list[Failure],
    min_rf: int,
    spread: int,
    cost: float,
    budget: float | None,
    max_raise: int,
    half_life: float,
) -> None:
    policy = LearningPolicy(enabled=True, max_raise=max_raise, half_life_s=half_life)
    learned = learned_rf(
        "payments", failures, NOW, policy, min_rf=min_rf, max_rf=min_rf + spread, cost=cost, budget_left=budget
    )
    assert min_rf <= learned.min_rf <= min_rf + spread
    assert learned.raised_by <= max_raise
    if budget is not None:
        assert learned.raised_by * cost <= max(0.0, budget) + 1e-6


@settings(max_examples=200, deadline=None)
@given(failures=history, later=st.floats(min_value=0, max_value=30 * DAY))
def test_time_alone_never_raises_it(failures: list[Failure], later: float) -> None:
    past = [f for f in failures if f.time <= NOW]  # no new failure arrives
    before = learned_rf("payments", past, NOW, ON, min_rf=1, max_rf=5, cost=1.0, budget_left=None)
    after = learned_rf("payments", past, NOW + later, ON, min_rf=1, max_rf=5, cost=1.0, budget_left=None)
    assert after.min_rf <= before.min_rf
    for vm, penalty in placement_penalties(past, NOW + later, ON).vms.items():
        assert penalty <= placement_penalties(past, NOW, ON).vms.get(vm, 0.0)
