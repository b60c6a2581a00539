"""`depmirror zone shift|status|end` as an operator runs them: what is printed, what the store and the
history hold afterwards, and one clear line (exit 2, no traceback) for every refusal or bad flag."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.unit.graph_data import base_graph

from depmirror.cli.main import main
from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan
from depmirror.store import EventFilter, open_store


@pytest.fixture
def graph_file(tmp_path: Path) -> Path:
    path = tmp_path / "graph.yml"
    path.write_text(yaml.safe_dump(base_graph()), encoding="utf-8")
    return path


def _zone_of_some_primary(graph_file: Path) -> str:
    primary = compute_plan(load_graph(graph_file)).dependencies[0].primary
    return str(primary.zone) if primary else "zone-a"


def _zone(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "depmirror.cli", "zone", *args], capture_output=True, text=True, timeout=60
    )


def test_shift_status_end_round_trip(graph_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "s.db")
    zone = _zone_of_some_primary(graph_file)
    common = ["--graph", str(graph_file), "--store", store, "--by", "alice"]
    assert main(["zone", "shift", zone, "--reason", "drill", "--expires", "30m", *common, "--format", "json"]) == 0
    shifted = json.loads(capsys.readouterr().out)
    assert shifted["shift"]["zone"] == zone and shifted["shift"]["created_by"] == "alice"
    assert shifted["queued"] == len(shifted["moved"]) >= 1
    assert main(["zone", "status", "--store", store]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["ZONE", "STATE", "STARTED_TS"]
    assert table[1].split()[:2] == [zone, "active"] and "drill" in table[1]
    assert main(["zone", "end", zone, "--store", store, "--by", "bob", "--failback-hold", "0s"]) == 0
    assert "failback(s) queued" in capsys.readouterr().out
    assert main(["zone", "status", "--store", store, "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["state"] == "ended" and row["end_reason"] == "ended by bob"
    with open_store(store) as opened:
        kinds = [e.kind for e in opened.events(EventFilter(limit=None))]
    assert kinds == ["zonal_shift_end", "zonal_shift"]


def test_shadow_changes_nothing(graph_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "s.db")
    assert (
        main(
            [
                "zone",
                "shift",
                "zone-a",
                "--reason",
                "rehearsal",
                "--shadow",
                "--graph",
                str(graph_file),
                "--store",
                store,
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith("shadow: would shift zone-a")
    with open_store(store) as opened:
        assert opened.zonal_shifts() == [] and opened.pending(opened.events()[0].time) == []
        assert opened.events()[0].outcome == "shadow"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["shift", "{{ lookup('pipe','id') }}", "--reason", "x"], "zone shift refused: unknown zone"),
        (["shift", "zone-a; rm -rf /", "--reason", "x"], "zone shift refused: unknown zone"),
        (["shift", "z" * 100_000, "--reason", "x"], "zone shift refused: unknown zone"),
        (["shift", "zone-a", "--reason", "x", "--expires", "73h"], "--expires: the expiry 73h is over the maximum"),
        (["shift", "zone-a", "--reason", "x", "--expires", "soon"], "--expires: 'soon' is not a duration"),
        (["shift", "zone-a", "--reason", "   "], "zone shift refused: a reason is required"),
        (["shift", "zone-a", "--reason", "r" * 100_000], "at most 500 printable characters"),
        (["shift", "zone-a", "--reason", "x", "--by", ""], "--by: a name (--by) is required"),
        (["end", "zone-a"], "'zone-a' has no shift in force"),
    ],
)
def test_refusals_and_bad_flags_are_one_line_exit_2(
    graph_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    store = tmp_path / "s.db"
    open_store(str(store)).close()
    result = _zone(*args, "--graph", str(graph_file), "--store", str(store))
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr) < 1000


def test_a_second_zone_is_refused_while_one_is_shifted(graph_file: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    assert _zone("shift", "zone-a", "--reason", "a", "--graph", str(graph_file), "--store", store).returncode == 0
    second = _zone("shift", "zone-b", "--reason", "b", "--graph", str(graph_file), "--store", store)
    assert second.returncode == 2
    assert "zone zone-a is already shifted and policy.zonal_shift.max_concurrent is 1" in second.stderr
    with open_store(store) as opened:
        assert [s.zone for s in opened.zonal_shifts()] == ["zone-a"]
        assert opened.events()[0].kind == "refused"


def test_plan_honours_the_shift(graph_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "s.db")
    assert main(["zone", "shift", "zone-a", "--reason", "drill", "--graph", str(graph_file), "--store", store]) == 0
    capsys.readouterr()
    assert main(["plan", "--graph", str(graph_file), "--store", store, "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    primaries = [i for d in plan["dependencies"] for i in d["instances"] if i["role"] == "primary"]
    assert primaries and all(i["zone"] != "zone-a" for i in primaries)
