"""`depmirror plan|explain|graph` as a user runs them: output, and exit 2 without a traceback on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.unit.graph_data import base_graph

from depmirror.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "inventories" / "example" / "graph.yml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "depmirror.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_plan_table_lists_every_dependency_and_the_totals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--graph", str(EXAMPLE), "--now", "0"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:5] == ["DEPENDENCY", "KIND", "PORT", "WEIGHT", "RF"]
    for name in ("catalog-api", "payments-api", "session-cache", "ledger"):
        assert name in out
    assert "to provision" in out and "budget 30" in out


def test_plan_json_from_the_default_graph(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["plan", "--format", "json", "--now", "0"]) == 0
    document = json.loads(capsys.readouterr().out)
    first = document["dependencies"][0]
    assert {"name", "weight", "replication_factor", "mode", "instances"} <= set(first)
    assert {"host", "zone", "role", "port"} <= set(first["instances"][0])


def test_plan_reads_state_and_health_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["plan", "--graph", str(EXAMPLE), "--format", "json", "--now", "0"])
    state = json.loads(capsys.readouterr().out)["state"]
    (tmp_path / "state.json").write_text(json.dumps(state), encoding="utf-8")
    primary = next(i for i in state["instances"] if i["dependency"] == "catalog-api" and i["role"] != "primary")
    health = {"instances": {f"catalog-api@{primary['host']}": 0.0}}
    (tmp_path / "health.json").write_text(json.dumps(health), encoding="utf-8")
    args = [
        "--graph",
        str(EXAMPLE),
        "--state",
        str(tmp_path / "state.json"),
        "--health",
        str(tmp_path / "health.json"),
    ]
    assert main(["plan", *args, "--format", "json", "--now", "10"]) == 0
    catalog = next(d for d in json.loads(capsys.readouterr().out)["dependencies"] if d["name"] == "catalog-api")
    actions = {(a["action"], a["host"]) for a in catalog["actions"]}
    assert ("decommission", primary["host"]) in actions
    assert sum(a["action"] == "provision" for a in catalog["actions"]) == 1


def test_explain_shows_weight_terms_rf_inputs_and_placement(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "ledger", "--graph", str(EXAMPLE), "--now", "0"]) == 0
    out = capsys.readouterr().out
    assert "weight 0." in out and "* tier" in out and "* impact" in out
    assert "impact: 2 direct consumer(s) via payments-api" in out
    assert "raw = 3 * weight" in out and "hysteresis: new" in out
    assert "mode active-passive" in out
    assert "placement:" in out and "198.18.0." in out


def test_graph_dot_colours_dependencies_by_weight(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "--graph", str(EXAMPLE)]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith("digraph depmirror {")
    assert '"storefront" -> "payments-api"' in dot
    assert 'fillcolor="#ff' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graph_svg_goes_through_graphviz(tmp_path: Path) -> None:
    out = tmp_path / "graph.svg"
    assert main(["graph", "--graph", str(EXAMPLE), "--format", "svg", "-o", str(out)]) == 0
    svg = out.read_text(encoding="utf-8")
    assert "<svg" in svg and "payments&#45;api" in svg  # Graphviz escapes the hyphen


def test_bad_graph_exits_2_with_file_field_and_fix_and_no_traceback(tmp_path: Path) -> None:
    data = base_graph()
    data["services"]["shop"]["depends_on"]["paymnts"] = {"rate": 1}
    path = tmp_path / "graph.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    done = run("plan", "--graph", str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{path}: services.shop.depends_on.paymnts: unknown dependency 'paymnts'" in done.stderr
    assert "fix:" in done.stderr


def test_unknown_dependency_in_explain_exits_2(tmp_path: Path) -> None:
    done = run("explain", "nope", "--graph", str(EXAMPLE))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "dependencies.nope: no such dependency" in done.stderr and "catalog-api" in done.stderr


def test_missing_graph_exits_2(tmp_path: Path) -> None:
    done = run("graph", "--graph", str(tmp_path / "absent.yml"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cannot read the graph file" in done.stderr
