from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from depmirror.errors import ConfigError
from depmirror.graph.health_spec import HealthSpec
from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.health.queries import InstanceRef
from depmirror.health.rules import instance_refs, monitoring_config, render_rules, render_targets

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "inventories" / "example" / "graph.yml"


@pytest.fixture(scope="module")
def graph() -> Graph:
    return load_graph(EXAMPLE)


def rules_by_alert(rules: dict[str, Any], dependency: str) -> dict[str, dict[str, Any]]:
    group = next(g for g in rules["groups"] if g["name"] == f"depmirror-{dependency}")
    return {rule["alert"]: rule for rule in group["rules"]}


def test_every_dependency_gets_its_own_rules_with_its_slo_thresholds(graph: Graph) -> None:
    rules = render_rules(graph, interval=5.0)
    assert [g["name"] for g in rules["groups"]] == [f"depmirror-{name}" for name in graph.dependencies]
    for dependency in graph.dependencies.values():
        by_alert = rules_by_alert(rules, dependency.name)
        latency = by_alert["DepmirrorLatencyOverSlo"]
        assert f"> {dependency.slo.latency_ms / 1000:g})" in latency["expr"]
        assert latency["labels"]["action"] == "notify"
        primary = by_alert["DepmirrorPrimaryDown"]
        assert primary["labels"] == {
            "dependency": dependency.name,
            "severity": "critical",
            "action": "rollback",
        }
        assert 'role="primary"' in primary["expr"]
        assert "group_left(dependency, zone, role, instance)" in primary["expr"]
        # 3 samples at 5s: the condition holds at 3 evaluations, 10s apart from first to last.
        assert primary["for"] == "10s"
        assert by_alert["DepmirrorInstanceDown"]["labels"]["action"] == "adjust"
        assert by_alert["DepmirrorHealthUnknown"]["labels"]["action"] == "notify"


def test_a_custom_error_ratio_adds_its_rule_and_samples_set_the_hold(graph: Graph) -> None:
    spec = HealthSpec(error_ratio='sum by (host) (rate(errs{svc="$dependency"}[1m]))', samples=5)
    rules = render_rules(graph, interval=2.0, specs={"ledger": spec})
    by_alert = rules_by_alert(rules, "ledger")
    slo = graph.dependencies["ledger"].slo
    assert f'errs{{svc="ledger"}}[1m]))) > {slo.error_ratio:g})' in by_alert["DepmirrorErrorRatioOverSlo"]["expr"]
    assert by_alert["DepmirrorPrimaryDown"]["for"] == "8s"
    assert "DepmirrorErrorRatioOverSlo" not in rules_by_alert(rules, "catalog-api")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) is not installed")
def test_promtool_accepts_the_rendered_rules(graph: Graph, tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(render_rules(graph, interval=5.0)))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {4 * len(graph.dependencies)} rules found" in result.stdout


def test_targets_carry_the_labels_alerts_and_verdicts_need(graph: Graph) -> None:
    targets = render_targets(graph, [InstanceRef("session-cache", "vm-b1", "mirror")])
    assert targets == [
        {
            "targets": ["198.18.0.21:6380"],
            "labels": {
                "__param_module": "tcp_connect",
                "dependency": "session-cache",
                "kind": "redis",
                "host": "vm-b1",
                "zone": "zone-b",
                "role": "mirror",
                "instance": "session-cache@vm-b1",
            },
        }
    ]


@pytest.mark.parametrize(
    ("ref", "field"),
    [
        (InstanceRef("nope", "vm-a1", "primary"), "instances.nope.vm-a1"),
        (InstanceRef("ledger", "vm-z9", "primary"), "instances.ledger.vm-z9"),
        (InstanceRef("ledger", "vm-a1", "boss"), "instances.ledger.vm-a1.role"),
    ],
)
def test_a_wrong_instance_names_the_field(graph: Graph, ref: InstanceRef, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        render_targets(graph, [ref])
    assert error.value.field == field


def test_instances_come_from_a_list_or_from_a_plan() -> None:
    plan = {"dependencies": [{"name": "ledger", "instances": [{"host": "vm-a1", "role": "primary"}]}]}
    assert instance_refs(plan) == [InstanceRef("ledger", "vm-a1", "primary")]
    listed = [{"dependency": "ledger", "host": "vm-b1", "role": "mirror"}]
    assert instance_refs(listed) == [InstanceRef("ledger", "vm-b1", "mirror")]
    with pytest.raises(ValueError, match=r"instances\[0\]"):
        instance_refs([{"host": "vm-a1"}])
    with pytest.raises(ValueError, match="list or a plan"):
        instance_refs("ledger@vm-a1")


def test_the_monitoring_config_points_the_probe_job_at_the_targets_file(graph: Graph) -> None:
    config = monitoring_config(graph, [], "1s", "127.0.0.1:9115", "/srv/targets.json")
    probe = config["scrape_configs"][0]
    assert probe["file_sd_configs"] == [{"files": ["/srv/targets.json"], "refresh_interval": "1s"}]
    assert {"target_label": "__address__", "replacement": "127.0.0.1:9115"} in probe["relabel_configs"]
    assert config["targets"] == []
