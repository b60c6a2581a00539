"""The history `policy.learning` learns from, read from a real store: rollbacks that ran (not shadow ones,
not refusals), up to `now`, nothing at all while the policy is off; and the plan action raising a minimum RF
from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from depmirror.fleet.applied import record_applied_plan
from depmirror.fleet.learning_inputs import failures_from_store
from depmirror.fleet.planning import plan_for_playbook
from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan
from depmirror.store import Event, open_store

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "example" / "graph.yml"


def graph_file(tmp_path: Path, learning: dict[str, object] | None) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    if learning is not None:
        data["policy"]["learning"] = learning
    path = tmp_path / "graph.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def rollback(at: datetime, outcome: str = "succeeded", dependency: str = "reports-api") -> Event:
    return Event(kind="rollback", dependency=dependency, instance=f"{dependency}@vm-a1", outcome=outcome, time=at)


def test_rollbacks_that_ran_are_read_up_to_now_and_only_while_learning_is_on(tmp_path: Path) -> None:
    url = str(tmp_path / "state.db")
    now = datetime.now(UTC)
    record_applied_plan(url, compute_plan(load_graph(EXAMPLE), now=now.timestamp() - 60).to_dict())
    with open_store(url) as store:
        ids = [store.append_event(rollback(now - timedelta(minutes=m))) for m in (30, 20)]
        store.append_event(rollback(now - timedelta(minutes=10), outcome="shadow"))
        store.append_event(Event(kind="refused", dependency="reports-api", outcome="refused", time=now))
        store.append_event(rollback(now - timedelta(days=400)))  # decayed long ago: not read
        store.append_event(rollback(now + timedelta(hours=1)))  # after `now`
    on = load_graph(graph_file(tmp_path, {"half_life": "1d"}))
    failures = failures_from_store(on, url, now.timestamp())
    assert sorted(f.event_id or 0 for f in failures) == sorted(e.id or 0 for e in ids)
    assert {(f.dependency, f.host, f.zone) for f in failures} == {("reports-api", "vm-a1", "zone-a")}
    assert failures_from_store(load_graph(EXAMPLE), url, now.timestamp()) == ()
    assert failures_from_store(on, str(tmp_path / "missing.db"), now.timestamp()) == ()


def test_the_plan_action_raises_the_minimum_from_three_failovers(tmp_path: Path) -> None:
    url = str(tmp_path / "state.db")
    now = datetime.now(UTC)
    record_applied_plan(url, compute_plan(load_graph(EXAMPLE), now=now.timestamp() - 60).to_dict())
    with open_store(url) as store:
        ids = [store.append_event(rollback(now - timedelta(minutes=m))).id or 0 for m in (30, 20, 10)]
    off, _ = plan_for_playbook(EXAMPLE, store=url)
    on, _ = plan_for_playbook(graph_file(tmp_path, {}), store=url)
    before = next(d for d in off["dependencies"] if d["name"] == "reports-api")
    after = next(d for d in on["dependencies"] if d["name"] == "reports-api")
    assert "history" not in before["rf"]
    assert after["rf"]["history"]["events"] == sorted(ids)
    assert after["rf"]["history"]["min"] == before["rf"]["min"] + 1
    assert after["replication_factor"] == before["replication_factor"] + 1
