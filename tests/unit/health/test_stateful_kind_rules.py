"""Monitoring for every kind the graph accepts: `postgresql` and a `stateful:` block on a generic kind get
probes, targets and alert rules like any other (a `postgresql` dependency once raised KeyError here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.graph_data import base_graph, build, dependency

from depmirror.graph.model import KINDS
from depmirror.health.queries import PROBE_MODULES
from depmirror.health.rules import monitoring_config

ENGINE = {"promote": ["engine-ctl", "promote"], "fence": ["engine-ctl", "fence"], "lag": ["engine-ctl", "lag"]}


def graph_with_stateful_kinds() -> Any:
    data = base_graph()
    data["dependencies"]["orders-db"] = {"tier": 1, "kind": "postgresql", "port": 5432}
    data["dependencies"]["carts-db"] = dependency(tier=1, port=27017, kind="tcp", stateful=ENGINE)
    data["services"]["shop"]["depends_on"].update({"orders-db": {"rate": 50}, "carts-db": {"rate": 50}})
    return build(data)


INSTANCES = [
    {"dependency": "orders-db", "host": "vm-a1", "role": "primary"},
    {"dependency": "orders-db", "host": "vm-b1", "role": "standby"},
    {"dependency": "carts-db", "host": "vm-c1", "role": "primary"},
]


def test_every_kind_has_a_probe_module() -> None:
    assert set(PROBE_MODULES) == set(KINDS)


def test_postgresql_and_a_stateful_block_get_targets_and_rules() -> None:
    config = monitoring_config(graph_with_stateful_kinds(), INSTANCES, "5s", "127.0.0.1:9115", "/t/targets.yml")
    targets = {g["labels"]["instance"]: g for g in config["targets"]}
    assert targets["orders-db@vm-a1"]["targets"] == ["198.18.0.11:5432"]
    assert targets["orders-db@vm-a1"]["labels"]["__param_module"] == "tcp_connect"
    assert targets["orders-db@vm-b1"]["labels"]["role"] == "standby"
    assert targets["carts-db@vm-c1"]["targets"] == ["198.18.0.31:27017"]
    assert targets["carts-db@vm-c1"]["labels"]["__param_module"] == "tcp_connect"
    groups = {g["name"]: g for g in config["rules"]["groups"]}
    for name in ("orders-db", "carts-db"):
        alerts = {rule["alert"] for rule in groups[f"depmirror-{name}"]["rules"]}
        assert "DepmirrorPrimaryDown" in alerts and "DepmirrorInstanceDown" in alerts
        down = next(r for r in groups[f"depmirror-{name}"]["rules"] if r["alert"] == "DepmirrorPrimaryDown")
        assert down["labels"] == {"dependency": name, "severity": "critical", "action": "rollback"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) is not installed")
def test_promtool_accepts_their_rules(tmp_path: Path) -> None:
    config = monitoring_config(graph_with_stateful_kinds(), INSTANCES, "5s", "127.0.0.1:9115", "/t/targets.yml")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(config["rules"]))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
