"""`depmirror history stats` on a store holding the recorded history: JSON equal to the library's, the
table's figures, and one-line errors for bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from tests.unit.fleet.test_history_stats import recorded
from tests.unit.graph_data import base_graph

from depmirror.cli.main import main
from depmirror.fleet.history_stats import compute_stats
from depmirror.store import open_store

SINCE = "2026-11-01T00:00:00+00:00"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = str(tmp_path / "state.db")
    with open_store(url) as store:
        for event in sorted(recorded(), key=lambda e: e.id or 0):
            store.append_event(event)
    return url


def test_json_is_the_library_statistics(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "stats", "--store", store_url, "--since", SINCE, "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["total"]["failovers"] == 4
    assert document["since"] == SINCE
    expected = compute_stats(recorded(), since=datetime.fromisoformat(SINCE)).as_dict()
    assert document["groups"] == expected["groups"]


def test_table_by_vm(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "stats", "--store", store_url, "--since", SINCE, "--by", "vm"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("14 events since 2026-11-01 00:00:00 UTC, by vm")
    vm_a1 = next(line.split() for line in lines if line.startswith("vm-a1"))
    assert vm_a1[1:5] == ["2", "0", "0", "2"]  # failovers, failed, shadow, failbacks
    assert vm_a1[-1] == "20.0m/1.0h/1.0h"  # switched -> failback
    assert "top reasons:" in out and "no healthy target" in out


def test_by_zone_reads_zones_from_the_graph(store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = base_graph()  # zone-a/b/c with vm-a1 .. vm-c2
    graph["vms"]["vm-a3"] = {"address": "198.18.0.13", "zone": "zone-a"}
    path = tmp_path / "graph.yml"
    path.write_text(yaml.safe_dump(graph))
    args = ["history", "stats", "--store", store_url, "--since", SINCE, "--by", "zone", "--graph", str(path)]
    assert main([*args, "--format", "json"]) == 0
    groups = {group["key"]: group for group in json.loads(capsys.readouterr().out)["groups"]}
    assert list(groups) == ["zone-a", "zone-b", "zone-c"]
    assert groups["zone-a"]["held"] == 1 and groups["zone-b"]["refusals"] == 2


@pytest.mark.parametrize("since", ["soon", "2026-11-01T00:00:00", "{{ 7*7 }}"])
def test_bad_since_is_one_line(store_url: str, since: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "stats", "--store", store_url, "--since", since]) == 2
    err = capsys.readouterr().err
    assert err.startswith("depmirror: error: command line: --since") and "Traceback" not in err


def test_a_missing_store_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "stats", "--store", str(tmp_path / "none.db")]) == 2
    assert "no store here" in capsys.readouterr().err


def test_plain_history_still_lists_events(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--store", store_url, "--limit", "2", "--format", "json"]) == 0
    assert [e["id"] for e in json.loads(capsys.readouterr().out)] == [16, 15]


def test_empty_window(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    later = datetime(2026, 11, 3, tzinfo=UTC).isoformat()
    assert main(["history", "stats", "--store", store_url, "--since", later]) == 0
    assert capsys.readouterr().out.startswith("0 events since 2026-11-03")
