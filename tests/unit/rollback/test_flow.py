"""The controller's side of rollback.yml and failback.yml, on a real SQLite store and plan-shaped data."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.unit.graph_data import base_graph, build

from depmirror.rollback.decide import RollbackRefused
from depmirror.rollback.flow import (
    FailbackRefused,
    FlowError,
    Health,
    host_of,
    lag_exclusions,
    offsets_of,
    prepare_failback,
    prepare_rollback,
    record_routing,
    replication_offset,
    running_dependencies,
)
from depmirror.store import Event, open_store

ZONES = {"vm-a1": "zone-a", "vm-a2": "zone-a", "vm-b1": "zone-b", "vm-c1": "zone-c"}
ADDRESSES = {"vm-a1": "198.18.0.11", "vm-a2": "198.18.0.12", "vm-b1": "198.18.0.21", "vm-c1": "198.18.0.31"}


def _item(
    name: str, hosts: list[str], kind: str = "redis", mode: str = "active-passive", port: int = 6380
) -> dict[str, Any]:
    standby = "standby" if mode == "active-passive" else "mirror"
    return {
        "name": name,
        "kind": kind,
        "mode": mode,
        "port": port,
        "primary": {"host": hosts[0], "address": ADDRESSES[hosts[0]], "port": port},
        "instances": [
            {
                "host": h,
                "zone": ZONES[h],
                "address": ADDRESSES[h],
                "port": port,
                "role": "primary" if h == hosts[0] else standby,
            }
            for h in hosts
        ],
    }


def _plan() -> list[dict[str, Any]]:
    return [
        _item("sessions", ["vm-a1", "vm-a2", "vm-b1", "vm-c1"]),
        _item("payments", ["vm-b1", "vm-c1"], kind="http", mode="active-active", port=8081),
    ]


def _health(scores: dict[str, float | None], excluded: dict[str, str] | None = None) -> Health:
    states = {h: "unknown" if s is None else ("healthy" if s >= 0.5 else "failing") for h, s in scores.items()}
    return Health(scores, excluded or {}, [], [], states)


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'depmirror.db'}"
    with open_store(url) as opened:
        opened.set_applied_plan({"plan": {"dependencies": _plan()}})
    return url


def test_an_alert_names_an_instance_dependency_at_host_and_people_name_the_host() -> None:
    assert host_of("sessions", "sessions@vm-a1") == "vm-a1"
    assert host_of("sessions", "vm-a1") == "vm-a1"
    assert host_of("sessions", "payments@vm-a1") == "payments@vm-a1"


def test_replicas_further_behind_the_most_advanced_than_the_max_lag_may_not_be_promoted() -> None:
    offsets = {"vm-a2": 1000, "vm-b1": 990, "vm-c1": 1000}
    assert lag_exclusions(offsets, 10) == {}
    lagging = lag_exclusions(offsets, 5)
    assert list(lagging) == ["vm-b1"]
    assert "10 bytes behind vm-c1" in lagging["vm-b1"]
    assert lag_exclusions({}, 0) == {}


def test_the_replication_offset_is_read_from_info_replication_by_role() -> None:
    replica = "# Replication\r\nrole:slave\r\nmaster_repl_offset:900\r\nslave_repl_offset:875\r\n"
    primary = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nmaster_repl_offset:1200\r\n"
    assert replication_offset(replica) == 875
    assert replication_offset(primary) == 1200
    assert replication_offset(42) == 42 and replication_offset("42") == 42
    assert replication_offset("Could not connect to Redis at 127.0.0.1:6380: Connection refused") is None
    assert offsets_of({"vm-a2": replica, "vm-b1": "", "vm-c1": primary}) == {"vm-a2": 875, "vm-c1": 1200}


def test_without_an_applied_plan_the_flow_says_to_run_adjust_first(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match=r"run playbooks/adjust\.yml"):
        running_dependencies(f"sqlite:///{tmp_path / 'empty.db'}")


def test_what_runs_now_is_the_applied_plan_with_the_primaries_the_store_records(store: str) -> None:
    with open_store(store) as opened:
        opened.set_primary("sessions", "vm-b1")
    sessions = next(d for d in running_dependencies(store) if d["name"] == "sessions")
    assert sessions["primary"]["host"] == "vm-b1"
    roles = {i["host"]: i["role"] for i in sessions["instances"]}
    assert roles == {"vm-a1": "standby", "vm-a2": "standby", "vm-b1": "primary", "vm-c1": "standby"}


def test_a_rollback_moves_the_primary_to_another_zone_and_fences_the_failed_instance() -> None:
    plan = _plan()
    decided = prepare_rollback(
        plan,
        "sessions",
        "sessions@vm-a1",
        _health({"vm-a1": 0.0, "vm-a2": 1.0, "vm-b1": 0.9, "vm-c1": 0.8}),
        unhealthy_below=0.5,
    )
    assert decided["target"]["host"] == "vm-b1"
    assert decided["failed"]["host"] == "vm-a1" and decided["failed"]["role"] == "primary"
    assert decided["survivors"] == ["vm-a2", "vm-b1", "vm-c1"] and decided["replicas"] == ["vm-a2", "vm-c1"]
    assert [i["host"] for i in decided["after"]["instances"]] == ["vm-a2", "vm-b1", "vm-c1"]
    assert decided["after"]["primary"]["host"] == "vm-b1"
    routed = {d["name"]: d for d in decided["dependencies"]}
    assert routed["sessions"] == decided["after"] and routed["payments"] == plan[1]
    assert decided["inputs"]["health"]["vm-b1"] == {"score": 0.9, "verdict": "healthy"}
    assert plan == _plan(), "the input must not change"


def test_the_most_advanced_replica_wins_when_the_others_lag_too_far() -> None:
    decided = prepare_rollback(
        _plan(),
        "sessions",
        "vm-a1",
        _health({"vm-a1": None, "vm-a2": 1.0, "vm-b1": 1.0, "vm-c1": 1.0}),
        unhealthy_below=0.5,
        offsets={"vm-a2": 500, "vm-b1": 480, "vm-c1": 470},
        max_lag=0,
    )
    assert decided["target"]["host"] == "vm-a2"
    assert "same zone" in decided["reason"]
    assert decided["inputs"]["replication_offsets"] == {"vm-a2": 500, "vm-b1": 480, "vm-c1": 470}


def test_only_the_candidates_the_runner_verified_may_take_over() -> None:
    decided = prepare_rollback(
        _plan(),
        "sessions",
        "vm-a1",
        _health({"vm-a1": 0.0, "vm-a2": 1.0, "vm-b1": 1.0, "vm-c1": 0.9}),
        unhealthy_below=0.5,
        candidates=["sessions@vm-c1"],
    )
    assert decided["target"]["host"] == "vm-c1"
    assert decided["inputs"]["verified_candidates"] == ["vm-c1"]


def test_a_failing_mirror_is_no_switchover() -> None:
    with pytest.raises(RollbackRefused) as refused:
        prepare_rollback(
            _plan(), "payments", "payments@vm-c1", _health({"vm-b1": 1.0, "vm-c1": 0.0}), unhealthy_below=0.5
        )
    assert "vm-c1 is not the primary of payments (vm-b1 is)" in str(refused.value)
    assert refused.value.decision.target is None


def test_a_degraded_instance_is_no_target_and_the_refusal_names_every_candidate() -> None:
    with pytest.raises(RollbackRefused) as refused:
        prepare_rollback(
            _plan(),
            "sessions",
            "vm-a1",
            _health({"vm-a2": 0.2, "vm-b1": 0.9, "vm-c1": None}, {"vm-b1": "degraded (slow)"}),
            unhealthy_below=0.5,
        )
    reason = refused.value.decision.reason
    assert "vm-a2: unhealthy" in reason and "vm-b1: degraded (slow)" in reason and "vm-c1: health unknown" in reason


def test_an_unknown_dependency_or_host_is_a_flow_error_that_lists_what_exists() -> None:
    with pytest.raises(FlowError, match="the applied plan has: payments, sessions"):
        prepare_rollback(_plan(), "nope", "vm-a1", _health({}), unhealthy_below=0.5)
    with pytest.raises(FlowError, match="vm-a2 runs no instance of payments"):
        prepare_rollback(_plan(), "payments", "vm-a2", _health({}), unhealthy_below=0.5)


def _rolled_back(store: str, when: datetime) -> list[dict[str, Any]]:
    """The plan after vm-a1 failed over to vm-b1 at `when`, as record.yml leaves it in the store."""
    decided = prepare_rollback(
        _plan(),
        "sessions",
        "vm-a1",
        _health({"vm-a1": 0.0, "vm-a2": 1.0, "vm-b1": 1.0, "vm-c1": 1.0}),
        unhealthy_below=0.5,
    )
    with open_store(store) as opened:
        opened.append_event(
            Event(
                kind="rollback", dependency="sessions", outcome="succeeded", time=when, instance="vm-a1", target="vm-b1"
            )
        )
        opened.set_primary("sessions", "vm-b1")
    record_routing(store, decided["after"])
    return running_dependencies(store)


def test_record_routing_makes_the_applied_plan_say_what_the_load_balancers_route(store: str) -> None:
    running = _rolled_back(store, datetime.now(UTC))
    sessions = next(d for d in running if d["name"] == "sessions")
    assert [i["host"] for i in sessions["instances"]] == ["vm-a2", "vm-b1", "vm-c1"]
    assert next(d for d in running if d["name"] == "payments") == _plan()[1]


def test_failback_waits_for_the_hold_time_after_the_rollback(store: str) -> None:
    now = datetime.now(UTC)
    running = _rolled_back(store, now - timedelta(seconds=100))
    graph = build(base_graph())
    healthy = _health({"vm-a1": 1.0, "vm-b1": 1.0})
    with pytest.raises(FailbackRefused, match=r"hold time is 300 s \(200 s left\)"):
        prepare_failback(
            running,
            graph,
            "sessions",
            "sessions@vm-a1",
            healthy,
            store_url=store,
            hold_s=300,
            move_primary_back=False,
            now=now,
        )
    back = prepare_failback(
        running,
        graph,
        "sessions",
        "sessions@vm-a1",
        healthy,
        store_url=store,
        hold_s=60,
        move_primary_back=False,
        now=now,
    )
    assert back["new_primary"]["host"] == "vm-b1" and back["recovered"]["host"] == "vm-a1"
    roles = {i["host"]: i["role"] for i in back["after"]["instances"]}
    assert roles == {"vm-a2": "standby", "vm-b1": "primary", "vm-c1": "standby", "vm-a1": "standby"}
    assert back["replicas"] == ["vm-a2", "vm-c1"]
    assert "as standby of vm-b1" in back["reason"]


def test_failback_can_hand_the_primary_role_back(store: str) -> None:
    running = _rolled_back(store, datetime.now(UTC) - timedelta(hours=1))
    back = prepare_failback(
        running,
        build(base_graph()),
        "sessions",
        "vm-a1",
        _health({"vm-a1": 1.0}),
        store_url=store,
        hold_s=300,
        move_primary_back=True,
    )
    assert back["new_primary"] == {
        "host": "vm-a1",
        "zone": "zone-a",
        "address": "198.18.0.11",
        "port": 6380,
        "role": "primary",
    }
    assert back["after"]["primary"]["host"] == "vm-a1"
    roles = {i["host"]: i["role"] for i in back["after"]["instances"]}
    assert roles == {"vm-a2": "standby", "vm-b1": "standby", "vm-c1": "standby", "vm-a1": "primary"}
    assert "takes the primary role back" in back["reason"]


def _sessions_back_to_vm_a1(running: list[dict[str, Any]], store: str, scores: dict[str, float | None]) -> Any:
    """A failback of `sessions` to vm-a1 at once (no hold, the primary stays where it is)."""
    return prepare_failback(
        running,
        build(base_graph()),
        "sessions",
        "vm-a1",
        _health(scores),
        store_url=store,
        hold_s=0,
        move_primary_back=False,
    )


@pytest.mark.parametrize(
    ("scores", "why"),
    [
        ({"vm-a1": None}, "vm-a1 is unknown, not healthy"),
        ({"vm-a1": 0.1}, "vm-a1 is failing, not healthy"),
    ],
)
def test_failback_needs_the_instance_healthy_not_merely_unknown(
    store: str, scores: dict[str, float | None], why: str
) -> None:
    running = _rolled_back(store, datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(FailbackRefused, match=why):
        _sessions_back_to_vm_a1(running, store, scores)


def test_the_primary_itself_cannot_fail_back(store: str) -> None:
    running = copy.deepcopy(_plan())
    with pytest.raises(FailbackRefused, match="already the primary"):
        _sessions_back_to_vm_a1(running, store, {"vm-a1": 1.0})


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"kind": "postgresql"}, "a postgresql"),
        ({"stateful_commands": {"promote": ["promote"], "fence": ["fence"], "lag": ["lag"]}}, "a stateful"),
    ],
)
def test_a_fenced_database_primary_is_not_started_again_by_a_failback(
    store: str, change: dict[str, object], named: str
) -> None:
    # Started as it was fenced, it would take writes on its old timeline beside the promoted standby.
    running = _rolled_back(store, datetime.now(UTC) - timedelta(hours=1))
    for item in running:
        if item["name"] == "sessions":
            item.update(change)
    with pytest.raises(FailbackRefused, match=f"{named} dependency.*rebuilds it as a standby"):
        _sessions_back_to_vm_a1(running, store, {"vm-a1": 1.0})
