"""The `monitoring` role's output in a real Prometheus + Alertmanager: a dead primary reaches the runner's
webhook with the labels the runner acts on, and a configuration that fails its check never replaces the last
good one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.health_services import (
    ALERTMANAGER,
    BLACKBOX,
    PROMETHEUS,
    Received,
    WebhookReceiver,
    free_port,
    need,
    processes,
    prometheus_query,
    start_alertmanager,
    start_blackbox,
    start_http_instance,
    start_prometheus,
    wait_until,
)

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "runner-token-for-the-test"
INSTANCES = [
    {"dependency": "web", "host": "vm-a1", "role": "primary"},
    {"dependency": "web", "host": "vm-b1", "role": "mirror"},
]
PLAYBOOK = """\
- name: Render the monitoring configuration
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [vars.json]
  roles:
    - role: depmirror.mirroring.monitoring
- name: Render it again, unchanged
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [vars.json]
  roles:
    - role: depmirror.mirroring.monitoring
- name: Render an Alertmanager configuration that amtool refuses
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [vars.json]
  roles:
    - role: depmirror.mirroring.monitoring
      monitoring_alertmanager_group_wait: soon
      ignore_errors: true
"""


def write_graph(path: Path, port: int) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "zones": {"zone-a": {}, "zone-b": {}},
                "vms": {
                    "vm-a1": {"address": "127.0.0.1", "zone": "zone-a"},
                    "vm-b1": {"address": "127.0.0.2", "zone": "zone-b"},
                },
                "dependencies": {
                    "web": {
                        "tier": 0,
                        "kind": "http",
                        "port": port,
                        "slo": {"latency_ms": 300, "error_ratio": 0.01},
                        "deploy": {"command": "python3 -m http.server {port}"},
                    },
                },
            }
        )
    )


def run_role(workdir: Path, variables: dict[str, Any]) -> list[str]:
    """Run the three plays; returns each play's output (the default callback's text)."""
    (workdir / "play.yml").write_text(PLAYBOOK)
    (workdir / "vars.json").write_text(json.dumps(variables))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "play.yml"],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    plays = result.stdout.split("\nPLAY [")[1:]
    assert len(plays) == 3, result.stdout
    return plays


def task_output(play: str, words: str) -> str:
    """The output of the task whose name contains `words`."""
    return next(task for task in play.split("\nTASK [")[1:] if words in task.split("]")[0])


def firing(received: list[Received], alertname: str) -> list[tuple[dict[str, Any], Received]]:
    return [
        (alert, message)
        for message in received
        for alert in message.body.get("alerts", [])
        if alert["labels"].get("alertname") == alertname and alert["status"] == "firing"
    ]


def check_dashboard_queries(path: Path, url: str) -> None:
    """Every panel query of the dashboard the role wrote is valid PromQL; the health panel has data."""
    dashboard = json.loads(path.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$dependency", ".*").replace("$__range", "1h")
            result = prometheus_query(url, expr)  # raises HTTPError 400 on a PromQL syntax error
            if panel["title"].startswith("Dependency health"):
                assert len(result) == 2, result


def test_a_dead_primary_reaches_the_runner_webhook_with_its_labels(tmp_path: Path) -> None:
    need(PROMETHEUS, BLACKBOX, ALERTMANAGER)
    port = free_port()
    write_graph(tmp_path / "graph.yml", port)
    blackbox_port, alertmanager_port = free_port(), free_port()
    config_dir = tmp_path / "monitoring"
    with WebhookReceiver() as webhook, processes(tmp_path) as procs:
        output = run_role(
            tmp_path,
            {
                "monitoring_config_dir": str(config_dir),
                "monitoring_graph": str(tmp_path / "graph.yml"),
                "monitoring_instances": INSTANCES,
                "monitoring_scrape_interval": "1s",
                "monitoring_evaluation_interval": "1s",
                "monitoring_blackbox_address": f"127.0.0.1:{blackbox_port}",
                "monitoring_alertmanager_address": f"127.0.0.1:{alertmanager_port}",
                "monitoring_runner_webhook_url": webhook.url,
                "monitoring_runner_token": TOKEN,
                "monitoring_alertmanager_group_wait": "1s",
            },
        )
        first, again, refused = output
        assert "changed: [localhost]" in task_output(first, "Write the alert rules")
        assert "changed: [localhost]" not in again, "the role is not idempotent"
        amtool = task_output(refused, "Write the Alertmanager route")
        assert "fatal: [localhost]" in amtool and "not a valid duration" in amtool, amtool
        alertmanager_yml = yaml.safe_load((config_dir / "alertmanager.yml").read_text())
        assert alertmanager_yml["route"]["group_wait"] == "1s", "a refused config replaced the last good one"
        assert (config_dir / "alertmanager.yml").stat().st_mode & 0o077 == 0, "the token file is not private"
        rules = yaml.safe_load((config_dir / "rules" / "depmirror.rules.yml").read_text())
        by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
        latency_rule = by_name["DepmirrorLatencyOverSlo"]
        assert "> 0.3" in latency_rule["expr"], "the latency threshold is not the graph's SLO"

        primary = start_http_instance(procs, "web-a1", "127.0.0.1", port)
        start_http_instance(procs, "web-b1", "127.0.0.2", port)
        start_blackbox(procs, blackbox_port)
        start_alertmanager(procs, config_dir / "alertmanager.yml", alertmanager_port)
        _prometheus, url = start_prometheus(procs, config_dir / "prometheus.yml")
        wait_until(
            lambda: len([s for s in prometheus_query(url, 'probe_success{dependency="web"} == 1')]) == 2,
            20,
            "both instances probed up",
        )
        assert prometheus_query(url, 'ALERTS{alertname=~"Depmirror.*Down"}') == []
        check_dashboard_queries(config_dir / "grafana-dashboard.json", url)

        primary.kill()
        killed_at = time.monotonic()
        found = wait_until(lambda: firing(webhook.snapshot(), "DepmirrorPrimaryDown"), 30, "the rollback alert")
        elapsed = time.monotonic() - killed_at
        alert, message = found[0]
        assert message.authorization == f"Bearer {TOKEN}"
        assert message.body["version"] == "4"
        labels = alert["labels"]
        assert labels["action"] == "rollback"
        assert labels["dependency"] == "web"
        assert labels["host"] == "vm-a1"
        assert labels["zone"] == "zone-a"
        assert labels["instance"] == "web@vm-a1"
        assert labels["role"] == "primary"
        # scrape 1s + evaluation 1s + for 2s (3 samples) + group_wait 1s, plus start-up jitter.
        assert elapsed < 12, f"the alert took {elapsed:.1f}s"
        alerts = [a for m in webhook.snapshot() for a in m.body.get("alerts", [])]
        mirror_alerts = [a for a in alerts if a["labels"].get("host") == "vm-b1"]
        assert mirror_alerts == [], "the healthy mirror must not alert"
