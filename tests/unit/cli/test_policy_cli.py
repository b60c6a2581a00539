"""`depmirror policy set|show|clear` on a real SQLite store: what the history records, what the planner
then plans from, and one-line errors naming the flag for bad input (nothing stored)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from depmirror.cli.main import main
from depmirror.fleet.applied import record_applied_plan
from depmirror.fleet.current import load_planner_inputs
from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan
from depmirror.store import EventFilter, Override, open_store
from depmirror.store.model import utcnow

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "example" / "graph.yml"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = str(tmp_path / "state.db")
    record_applied_plan(url, compute_plan(load_graph(EXAMPLE), now=1000.0).to_dict())
    return url


def _set(store_url: str, *extra: str) -> int:
    return main(["policy", "set", "--store", store_url, "--by", "alice", *extra])


def test_set_show_clear(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["payments-api", "--rf-min", "3", "--expires-in", "2h", "--reason", "sale week", "--format", "json"]
    assert _set(store_url, *args) == 0
    stored = json.loads(capsys.readouterr().out)
    assert stored["changed"] and stored["override"]["rf_min"] == 3 and stored["override"]["created_by"] == "alice"
    assert _set(store_url, *args) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False, "the same override again changes nothing"
    assert main(["policy", "show", "--store", store_url]) == 0
    assert "payments-api: rf_min=3 until" in capsys.readouterr().out
    assert main(["policy", "clear", "payments-api", "--store", store_url, "--by", "bob", "--reason", "done"]) == 0
    assert main(["policy", "clear", "payments-api", "--store", store_url]) == 1
    with open_store(store_url) as store:
        events = store.events(EventFilter(kinds=("override", "override_end")))
    assert [(e.kind, e.trigger["user"]) for e in reversed(events)] == [("override", "alice"), ("override_end", "bob")]
    assert events[0].reason == "cleared by bob: done"


def test_the_planner_plans_from_the_overridden_bounds(store_url: str) -> None:
    graph = load_graph(EXAMPLE)
    bounds = graph.dependencies["payments-api"].replication
    assert (
        _set(store_url, "payments-api", "--rf-min", str(bounds.max_rf + 1), "--expires-in", "1h", "--reason", "r") == 0
    )
    inputs = load_planner_inputs(graph, store=store_url)
    assert inputs.graph is not None
    raised = inputs.graph.dependencies["payments-api"].replication
    assert (raised.min_rf, raised.max_rf) == (bounds.max_rf + 1, bounds.max_rf + 1)
    assert any("payments-api: replication" in warning for warning in inputs.warnings)
    plan = compute_plan(inputs.graph, inputs.state, now=2000.0)
    planned = next(d for d in plan.dependencies if d.name == "payments-api")
    assert planned.rf.min_rf == bounds.max_rf + 1
    assert planned.replication_factor == bounds.max_rf + 1 or planned.rf.budget_cut or planned.rf.placement_cut


def test_an_expired_override_is_not_in_force(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    now = utcnow()
    with open_store(store_url) as store:
        store.set_override(
            Override(
                "payments-api", 5, None, None, None, "old", "bob", now - timedelta(hours=2), now - timedelta(hours=1)
            )
        )
    assert main(["policy", "show", "--store", store_url]) == 0
    assert capsys.readouterr().out == "no override in force\n"
    graph = load_graph(EXAMPLE)
    assert load_planner_inputs(graph, store=store_url).graph == graph
    # The next change records it as ended, at its expiry.
    assert _set(store_url, "ledger", "--rollback", "frozen", "--expires-in", "1h", "--reason", "r") == 0
    with open_store(store_url) as store:
        ended = store.events(EventFilter(kinds=("override_end",)))
    assert [e.reason for e in ended] == ["expired"]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["payments-api", "--rf-min", "3", "--expires-in", "31d", "--reason", "r"], "--expires-in"),
        (["payments-api", "--rf-min", "3", "--expires-in", "{{ 7*7 }}", "--reason", "r"], "--expires-in"),
        (["payments-api", "--rf-min", "0", "--expires-in", "1h", "--reason", "r"], "--rf-min"),
        (["payments-api", "--unhealthy", "2", "--expires-in", "1h", "--reason", "r"], "--unhealthy"),
        (["payments-api", "--expires-in", "1h", "--reason", "r"], "--rf-min/--rf-max/--unhealthy/--rollback"),
        (["payments-api", "--rf-min", "2", "--expires-in", "1h", "--reason", " "], "--reason"),
        (["$(reboot)", "--rf-min", "2", "--expires-in", "1h", "--reason", "r"], "DEP"),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(
    store_url: str, args: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _set(store_url, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"depmirror: error: command line: {flag}") and "Traceback" not in err, err
    with open_store(store_url) as store:
        assert store.overrides(None) == []
