"""The lab's watch loads the rules a fleet's monitoring role loads (issue 16): each dependency's and the zone
alert, checked by Prometheus's own `promtool`. Loopback only, no lab hosts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from depmirror_lab import watch

from depmirror.graph.load import load_graph
from depmirror.health.rules import ZONE_ALERT, ZONE_GROUP, monitoring_config

ROOT = Path(__file__).resolve().parents[2]
GRAPH = ROOT / "inventories" / "example" / "graph.yml"


def test_the_watch_loads_the_zone_alert_as_the_monitoring_role_does() -> None:
    graph = load_graph(GRAPH)
    rules = watch.alert_rules(graph, 1.0)
    assert rules == monitoring_config(graph, [], "1s", "127.0.0.1:9115", "/t.json")["rules"]
    (zone,) = [group for group in rules["groups"] if group["name"] == ZONE_GROUP]
    assert [rule["alert"] for rule in zone["rules"]] == [ZONE_ALERT]
    # Two VMs per zone in the lab and the default alert_min_vms 2: only a whole zone fires it.
    assert ">= 2" in zone["rules"][0]["expr"]


def test_a_graph_with_the_zone_alert_off_gets_none(tmp_path: Path) -> None:
    data = yaml.safe_load(GRAPH.read_text())
    data["policy"]["zonal_shift"] = {"mode": "off"}
    (tmp_path / "graph.yml").write_text(yaml.safe_dump(data))
    rules = watch.alert_rules(load_graph(tmp_path / "graph.yml"), 1.0)
    assert ZONE_GROUP not in [group["name"] for group in rules["groups"]]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")
def test_promtool_accepts_the_watch_s_rule_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(watch.alert_rules(load_graph(GRAPH), 1.0), sort_keys=False))
    checked = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
