"""playbooks/monitoring.yml on the lab: the graph's rules, probes and route go onto "your" Prometheus and
Alertmanager (real ones, started as a user would have them, on the controller), they load after the
playbook's reload, and a primary stopped on a lab VM reaches a real runner (shadow mode) as an alert."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.ansible_run import adhoc, playbook
from tests.integration.health_services import (
    ALERTMANAGER,
    BLACKBOX,
    PROMETHEUS,
    free_port,
    http_ok,
    need,
    processes,
    prometheus_query,
    start_alertmanager,
    start_blackbox,
    start_prometheus,
    wait_until,
)
from tests.integration.test_adjust_lab import Fleet

from depmirror.store import EventFilter, open_store

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]
TOKEN = "monitoring-playbook-runner-token"


def _rule_names(prometheus_url: str) -> set[str]:
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/rules", timeout=2) as response:
        groups = json.load(response)["data"]["groups"]
    return {rule["name"] for group in groups for rule in group["rules"]}


def _rollbacks(store: Path, dependency: str) -> list[Any]:
    if not store.exists():
        return []
    with open_store(str(store), create=False) as opened:
        return opened.events(EventFilter(dependency=dependency, kinds=("rollback",), limit=None))


def test_the_playbook_loads_the_rules_into_prometheus_and_an_alert_reaches_the_runner(
    lab_up: Any, tmp_path: Path
) -> None:
    need(PROMETHEUS, BLACKBOX, ALERTMANAGER)
    fleet = Fleet(tmp_path, lab_up.inventory)
    assert playbook("tests/integration/playbooks/wipe.yml", [lab_up.inventory]).rc == 0
    deployed = fleet.adjust()
    assert deployed.rc == 0, deployed.messages() or deployed.stderr
    victim = next(d for d in fleet.plan().values() if d["kind"] == "http")
    primary = victim["primary"]["host"]

    config_dir = tmp_path / "monitoring"
    config_dir.mkdir()
    # "Your" Prometheus and Alertmanager, running before depmirror writes anything.
    (config_dir / "prometheus.yml").write_text("global: {scrape_interval: 1s}\n")
    (config_dir / "alertmanager.yml").write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
    (tmp_path / "token").write_text(TOKEN)
    runner_port, am_port = free_port(), free_port()
    runner_store = tmp_path / "runner.db"
    (tmp_path / "runner.yml").write_text(
        yaml.safe_dump(
            {
                "listen": {"host": "127.0.0.1", "port": runner_port},
                "auth": {"type": "bearer", "token_file": str(tmp_path / "token")},
                "store": str(runner_store),
                "graph": str(fleet.graph_file),
                "mode": "shadow",
                "policy": {"on_unknown_health": "delegate"},
            }
        )
    )
    with processes(tmp_path) as procs:
        blackbox = start_blackbox(procs)
        _am, am_url = start_alertmanager(procs, config_dir / "alertmanager.yml", am_port)
        _prom, prom_url = start_prometheus(procs, config_dir / "prometheus.yml")
        procs.start(
            "runner", [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(tmp_path / "runner.yml")]
        )
        wait_until(lambda: http_ok(f"http://127.0.0.1:{runner_port}/readyz"), 30, "the runner")
        assert not _rule_names(prom_url)

        monitoring_inventory = tmp_path / "monitoring.ini"
        monitoring_inventory.write_text(
            f"[depmirror_monitoring]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        )
        variables = {
            "monitoring_become": False,
            "monitoring_config_dir": str(config_dir),
            "monitoring_scrape_interval": "1s",
            "monitoring_evaluation_interval": "1s",
            "monitoring_blackbox_address": blackbox,
            "monitoring_alertmanager_address": f"127.0.0.1:{am_port}",
            "monitoring_runner_webhook_url": f"http://127.0.0.1:{runner_port}/alertmanager",
            "monitoring_runner_token": TOKEN,
            "monitoring_alertmanager_group_wait": "0s",
            "monitoring_prometheus_reload_url": f"{prom_url}/-/reload",
            "monitoring_alertmanager_reload_url": f"{am_url}/-/reload",
        }
        (tmp_path / "vars.json").write_text(json.dumps(variables))
        run = playbook(
            "playbooks/monitoring.yml", [*fleet.inventories, monitoring_inventory], "-e", f"@{tmp_path / 'vars.json'}"
        )
        assert run.rc == 0, run.messages() or run.stderr
        assert "Reload Prometheus" in {t["task"]["name"].split(" : ")[-1] for t in run.tasks()}

        rules = wait_until(lambda: _rule_names(prom_url), 20, "Prometheus to load the rules after the reload")
        assert "DepmirrorPrimaryDown" in rules
        up = f'probe_success{{dependency="{victim["name"]}"}} == 1'
        wait_until(lambda: len(prometheus_query(prom_url, up)) == len(victim["instances"]), 30, "every probe up")

        stopped = adhoc(
            fleet.inventories, primary, "ansible.builtin.command", f"systemctl stop depmirror-{victim['name']}"
        )
        assert stopped[primary].get("rc") == 0, stopped
        try:
            events = wait_until(lambda: _rollbacks(runner_store, victim["name"]), 60, "the alert to reach the runner")
        finally:
            adhoc(fleet.inventories, primary, "ansible.builtin.command", f"systemctl start depmirror-{victim['name']}")
        assert events[0].outcome == "shadow"
        assert events[0].instance in {primary, f"{victim['name']}@{primary}"}
