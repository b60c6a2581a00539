"""The zone alert rendered from the graph, run by Prometheus's own rule engine (`promtool test rules` on
synthetic probe series): it fires for a zone whose probed instances fail at or above the policy fraction
for `samples` probes, and not for one failing instance, a minority, or a blip shorter than the hold."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.graph_data import base_graph, build

from depmirror.graph.model import Graph
from depmirror.health.rules import ZONE_ALERT, ZONE_GROUP, monitoring_config, render_zone_rules

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")


def _graph(**policy: Any) -> Graph:
    data = base_graph()
    if policy:
        data["policy"] = {"zonal_shift": policy}
    return build(data)


def _series(zone: str, host: str, values: str, dependency: str = "payments") -> dict[str, str]:
    labels = (
        f'job="depmirror-blackbox", zone="{zone}", host="{host}", dependency="{dependency}",'
        f' instance="{dependency}@{host}"'
    )
    return {"series": f"probe_success{{{labels}}}", "values": values}


def _promtool_test(tmp_path: Path, graph: Graph, series: list[dict[str, str]], alerts: list[dict[str, Any]]) -> None:
    group = render_zone_rules(graph, interval=1.0)
    assert group is not None
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{**group, "interval": "1s"}]}))
    checked = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    test = tmp_path / "test.yml"
    test.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(rules)],
                "evaluation_interval": "1s",
                "tests": [{"interval": "1s", "input_series": series, "alert_rule_test": alerts}],
            }
        )
    )
    result = subprocess.run(["promtool", "test", "rules", str(test)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _firing(zone: str, percent: str, value: str) -> dict[str, Any]:
    return {
        "exp_labels": {"severity": "critical", "action": "zonal_shift", "zone": zone},
        "exp_annotations": {
            "summary": f"Zone {zone} is down ({percent} of its probed instances failing):"
            " shift every primary out of it",
            "value": value,
        },
    }


def test_the_rule_names_its_zone_and_asks_for_a_zonal_shift() -> None:
    group = render_zone_rules(_graph(samples=4), interval=2.0)
    assert group is not None and group["name"] == ZONE_GROUP
    (rule,) = group["rules"]
    assert rule["alert"] == ZONE_ALERT and rule["for"] == "6s"
    assert rule["labels"] == {"severity": "critical", "action": "zonal_shift"}
    assert ">= 0.5" in rule["expr"] and ">= 2" in rule["expr"]


def test_mode_off_renders_no_zone_alert_and_the_monitoring_config_carries_it_otherwise() -> None:
    assert render_zone_rules(_graph(mode="off"), 1.0) is None
    off = monitoring_config(_graph(mode="off"), [], "1s", "127.0.0.1:9115", "/t.json")
    assert ZONE_GROUP not in [g["name"] for g in off["rules"]["groups"]]
    on = monitoring_config(_graph(), [], "1s", "127.0.0.1:9115", "/t.json")
    assert on["rules"]["groups"][-1]["name"] == ZONE_GROUP


@needs_promtool
def test_half_of_a_zone_failing_for_the_samples_fires(tmp_path: Path) -> None:
    # zone-a: 2 of 4 fail from t=2s; 3 samples at 1s -> pending at 2s, firing from 4s.
    series = [
        _series("zone-a", "vm-a1", "1 1 0 0 0 0 0 0"),
        _series("zone-a", "vm-a2", "1 1 0 0 0 0 0 0"),
        _series("zone-a", "vm-a3", "1 1 1 1 1 1 1 1"),
        _series("zone-a", "vm-a4", "1 1 1 1 1 1 1 1"),
        _series("zone-b", "vm-b1", "1 1 1 1 1 1 1 1"),
    ]
    alerts: list[dict[str, Any]] = [
        {"eval_time": "3s", "alertname": ZONE_ALERT, "exp_alerts": []},
        {"eval_time": "5s", "alertname": ZONE_ALERT, "exp_alerts": [_firing("zone-a", "50%", "0.5")]},
    ]
    _promtool_test(tmp_path, _graph(), series, alerts)


@needs_promtool
def test_a_minority_a_single_instance_or_a_blip_does_not_fire(tmp_path: Path) -> None:
    series = [
        # zone-a: 1 of 4 failing (25%).
        _series("zone-a", "vm-a1", "0 0 0 0 0 0 0 0"),
        _series("zone-a", "vm-a2", "1 1 1 1 1 1 1 1"),
        _series("zone-a", "vm-a3", "1 1 1 1 1 1 1 1"),
        _series("zone-a", "vm-a4", "1 1 1 1 1 1 1 1"),
        # zone-b: its only probed instance fails (100%, but fewer than alert_min_vms).
        _series("zone-b", "vm-b1", "0 0 0 0 0 0 0 0"),
        # zone-c: both fail for 2 samples only, then recover.
        _series("zone-c", "vm-c1", "1 0 0 1 1 1 1 1"),
        _series("zone-c", "vm-c2", "1 0 0 1 1 1 1 1"),
    ]
    alerts: list[dict[str, Any]] = [
        {"eval_time": t, "alertname": ZONE_ALERT, "exp_alerts": []} for t in ("2s", "4s", "7s")
    ]
    _promtool_test(tmp_path, _graph(), series, alerts)


@needs_promtool
def test_the_policy_fraction_and_minimum_are_honoured(tmp_path: Path) -> None:
    series = [
        _series("zone-b", "vm-b1", "0 0 0 0 0 0"),
        _series("zone-b", "vm-b2", "1 1 1 1 1 1"),
        _series("zone-b", "vm-b3", "1 1 1 1 1 1"),
    ]
    alerts = [
        {"eval_time": "4s", "alertname": ZONE_ALERT, "exp_alerts": [_firing("zone-b", "33.33%", "0.3333333333333333")]}
    ]
    _promtool_test(tmp_path, _graph(alert_fraction=0.3, alert_min_vms=1, samples=2), series, alerts)


@needs_promtool
def test_one_dead_vm_of_a_zone_of_two_is_not_a_zone_outage_both_are(tmp_path: Path) -> None:
    # Each VM runs three dependencies: vm-a1 dead from t=0 is half of zone-a's instances, but one VM;
    # vm-a2 dies too at t=4s.
    series = [
        _series("zone-a", host, values, dependency)
        for dependency in ("payments", "sessions", "reports")
        for host, values in (("vm-a1", "0 0 0 0 0 0 0 0 0 0"), ("vm-a2", "1 1 1 1 0 0 0 0 0 0"))
    ]
    alerts: list[dict[str, Any]] = [
        {"eval_time": "3s", "alertname": ZONE_ALERT, "exp_alerts": []},
        {"eval_time": "7s", "alertname": ZONE_ALERT, "exp_alerts": [_firing("zone-a", "100%", "1")]},
    ]
    _promtool_test(tmp_path, _graph(), series, alerts)
