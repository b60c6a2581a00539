"""What `depmirror plan`, `explain` and `graph` show a person: order, width, footer, RF/mode and cycles."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.graph_data import base_graph, dependency

from depmirror.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "inventories" / "example" / "graph.yml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main([*args, "--now", "0"]) == 0
    return capsys.readouterr().out


def write(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "graph.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_the_table_is_most_critical_first_and_within_120_columns(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "plan", "--graph", str(EXAMPLE))
    assert max(len(line) for line in out.splitlines()) <= 120
    weights = {}
    for line in out.splitlines()[1:]:
        cells = line.split()
        if len(cells) > 5 and cells[2].isdigit():
            weights[cells[0]] = float(cells[3])
    assert len(weights) == 7
    assert list(weights.values()) == sorted(weights.values(), reverse=True)
    names = list(weights)
    assert (names[0], names[-1]) == ("session-cache", "reports-api")


def test_sort_name_keeps_the_old_order_and_wide_keeps_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "plan", "--graph", str(EXAMPLE), "--sort", "name", "--wide")
    lines = out.splitlines()
    rows = [line.split()[0] for line in lines[1:8]]
    assert rows == sorted(rows) and len(rows) == 7
    assert any(len(line) > 120 for line in lines)  # wide: three instances and their changes on one line
    assert lines[8].startswith("16 to provision")


def test_the_footer_counts_what_was_placed_not_what_the_budget_granted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = base_graph()
    data["vms"] = {k: v for k, v in data["vms"].items() if k in ("vm-a1", "vm-b1")}
    data["zones"] = {"zone-a": {}, "zone-b": {}}
    data["policy"] = {"cost_budget": 30}
    out = run(capsys, "plan", "--graph", write(tmp_path, data))
    footer = out.splitlines()[-1]
    # payments and sessions want RF 3 each (granted within the budget), reports 1: two VMs hold 2 + 2 + 1.
    assert "5 instance(s) placed, cost 5 of budget 30 (7 granted; placement could not hold the rest)" in footer


def test_a_dependency_nothing_calls_is_warned_about_and_an_entry_is_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = base_graph()
    out = run(capsys, "plan", "--graph", write(tmp_path, data))
    assert "warning: reports: nothing calls it and it is not an `entry`: impact 0" in out
    data["dependencies"]["reports"]["entry"] = {"rate": 5}
    out = run(capsys, "plan", "--graph", write(tmp_path, data))
    assert "nothing calls it" not in out
    explained = run(capsys, "explain", "reports", "--graph", write(tmp_path, data))
    assert "5 req/s (of which 5 from outside the graph)" in explained
    assert "callers outside the graph (entry)" in explained


def test_explain_never_names_a_cycle_member_as_its_own_origin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = base_graph()
    data["dependencies"]["sessions"]["depends_on"] = {"payments": {"rate": 5}}  # payments <-> sessions
    data["dependencies"]["payments"]["tier"] = 0  # the cycle's most critical member...
    data["services"]["shop"]["tier"] = 2  # ...more critical than what calls it from outside
    path = write(tmp_path, data)
    for name in ("payments", "sessions"):
        out = run(capsys, "explain", name, "--graph", path)
        assert f"via {name} " not in out and f"origin {name}" not in out
        assert "member of a dependency cycle" in out


def test_the_graph_shows_rf_and_mode_and_marks_cycles_soft_calls_and_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = base_graph()
    data["dependencies"]["sessions"]["depends_on"] = {"payments": {"rate": 5}}
    data["services"]["shop"]["depends_on"]["reports"] = {"rate": 1, "required": False}
    data["dependencies"]["front"] = dependency(0, 9400, entry={"rate": 50})
    dot = run(capsys, "graph", "--graph", write(tmp_path, data))
    assert "RF 3 AA (active-active)" in dot and "RF 3 AP (active-passive)" in dot
    assert '"payments" -> "sessions" [label="100/s (cycle)", color="#c00000"' in dot
    assert '"sessions" -> "payments" [label="5/s (cycle)"' in dot
    assert '"shop" -> "reports" [label="1/s soft", style=dashed]' in dot
    assert '"shop" -> "payments" [label="100/s"]' in dot  # not on the cycle
    assert '"entry:front" -> "front" [label="entry 50/s"]' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_the_svg_carries_rf_and_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "graph.svg"
    assert main(["graph", "--graph", str(EXAMPLE), "--format", "svg", "-o", str(out), "--now", "0"]) == 0
    svg = out.read_text(encoding="utf-8")
    assert "RF 3 AA (active&#45;active)" in svg and "RF 2 AP (active&#45;passive)" in svg
