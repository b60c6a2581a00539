from __future__ import annotations

import copy
from pathlib import Path

import pytest
from tests.fakes.webhook import free_port

from depmirror.fleet.applied import record_applied_plan
from depmirror.fleet.current import state_from_store
from depmirror.fleet.rollback_history import record_event
from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan
from depmirror.store import EventFilter, StoreError, open_store

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "example" / "graph.yml"


def _plan() -> dict:
    return compute_plan(load_graph(EXAMPLE), now=1000.0).to_dict()


def test_recording_stores_the_plan_primaries_and_rf_changes_once(tmp_path: Path) -> None:
    store_url = str(tmp_path / "state.db")
    plan = _plan()
    dry = record_applied_plan(store_url, plan, dry_run=True)
    assert dry.changed
    assert open_store(store_url).applied_plan() is None, "a dry run must write nothing"

    first = record_applied_plan(store_url, plan)
    assert first.changed
    store = open_store(store_url)
    assert store.primaries() == {d["name"]: d["primary"]["host"] for d in plan["dependencies"]}
    events = store.events(EventFilter(kinds=("rf_change",), limit=None))
    assert {e.dependency for e in events} == {d["name"] for d in plan["dependencies"]}

    again = record_applied_plan(store_url, plan)
    assert not again.changed
    assert len(open_store(store_url).events(EventFilter(kinds=("rf_change",), limit=None))) == len(events)


def test_the_next_plan_starts_from_what_was_recorded(tmp_path: Path) -> None:
    store_url = str(tmp_path / "state.db")
    plan = _plan()
    record_applied_plan(store_url, plan)
    state = state_from_store(store_url)
    assert state is not None
    recorded = {(r.dependency, r.host, r.role) for r in state.instances}
    planned = {(d["name"], i["host"], i["role"]) for d in plan["dependencies"] for i in d["instances"]}
    assert recorded == planned
    again = compute_plan(load_graph(EXAMPLE), state, now=1001.0)
    assert all(a.action == "keep" for a in again.actions()), "a recorded plan is kept, not re-placed"


def test_a_rollback_event_moves_the_primary_the_planner_sees(tmp_path: Path) -> None:
    store_url = str(tmp_path / "state.db")
    plan = _plan()
    record_applied_plan(store_url, plan)
    item = next(d for d in plan["dependencies"] if d["mode"] == "active-active")
    target = next(i["host"] for i in item["instances"] if i["role"] != "primary")
    record_event(
        store_url,
        {
            "kind": "rollback",
            "dependency": item["name"],
            "outcome": "succeeded",
            "instance": item["primary"]["host"],
            "target": target,
            "set_primary": target,
        },
    )
    state = state_from_store(store_url)
    assert state is not None
    roles = {r.host: r.role for r in state.instances if r.dependency == item["name"]}
    assert roles[target] == "primary"
    assert list(roles.values()).count("primary") == 1


def test_commands_added_to_a_stateful_dependency_reach_the_record(tmp_path: Path) -> None:
    # The runner's fast path moves a `stateful:` engine's state with the commands the record carries; a
    # record kept because RF, mode and placement did not change would leave it without them.
    store_url = str(tmp_path / "state.db")
    plan = _plan()
    record_applied_plan(store_url, plan)
    declared = copy.deepcopy(plan)
    item = next(d for d in declared["dependencies"] if d["mode"] == "active-passive")
    item["stateful_commands"] = {"promote": ["promote"], "fence": ["fence"], "lag": ["lag"]}
    assert record_applied_plan(store_url, declared).changed
    recorded = open_store(store_url).applied_plan() or {}
    stored = next(d for d in recorded["plan"]["dependencies"] if d["name"] == item["name"])
    assert stored["stateful_commands"] == item["stateful_commands"]
    assert not record_applied_plan(store_url, declared).changed


def test_reading_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    assert state_from_store(str(missing)) is None
    assert not missing.exists()


def test_a_changed_rf_is_recorded_as_an_event_with_both_values(tmp_path: Path) -> None:
    store_url = str(tmp_path / "state.db")
    plan = _plan()
    record_applied_plan(store_url, plan)
    lowered = copy.deepcopy(plan)
    item = next(d for d in lowered["dependencies"] if d["replication_factor"] > 1)
    item["replication_factor"] -= 1
    item["instances"] = item["instances"][:-1]
    result = record_applied_plan(store_url, lowered)
    assert result.rf_changes == {item["name"]: (item["replication_factor"] + 1, item["replication_factor"])}
    newest = open_store(store_url).events(EventFilter(dependency=item["name"], kinds=("rf_change",), limit=1))[0]
    assert newest.decision == f"replication factor {item['replication_factor'] + 1} -> {item['replication_factor']}"


def test_a_store_server_that_does_not_answer_stops_the_plan() -> None:
    # Nothing listens there: planning from an empty fleet would place everything anew.
    with pytest.raises(StoreError):
        state_from_store(f"postgresql://depmirror@127.0.0.1:{free_port()}/depmirror?connect_timeout=1")
