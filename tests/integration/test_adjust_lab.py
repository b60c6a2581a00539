"""playbooks/adjust.yml on the lab: mirrors across zones, routing through nginx, changes in both directions.

One fleet for the module: the example graph (whose hosts are the lab's) with a 3-second stabilisation
window and its own state store. The module fixture checks and applies once; each test then stands on its
own (xdist does not keep their order): apply again, raise a tier and lower it, break nginx on purpose.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.ansible_run import ROOT, PlaybookRun, adhoc, playbook

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]
LB = "198.18.0.2"
WINDOW_S = 3


class Fleet:
    def __init__(self, directory: Path, lab_inventory: Path) -> None:
        self.dir = directory
        self.graph_file = directory / "graph.yml"
        self.store = directory / "state.db"
        self.source = directory / "fleet.depmirror.yml"
        self.inventories = [lab_inventory, self.source]
        self.graph = yaml.safe_load((ROOT / "inventories/example/graph.yml").read_text())
        self.graph["policy"]["replication"]["stabilisation_window"] = WINDOW_S
        self.write()
        self.source.write_text("plugin: depmirror.mirroring.graph\ngraph: graph.yml\nstate_store: state.db\n")

    def write(self) -> None:
        self.graph_file.write_text(yaml.safe_dump(self.graph, sort_keys=False))

    def adjust(self, *extra: str) -> PlaybookRun:
        return playbook("playbooks/adjust.yml", self.inventories, *extra)

    def plan(self) -> dict[str, Any]:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "depmirror.cli",
                "plan",
                "--graph",
                str(self.graph_file),
                "--format",
                "json",
                "--store",
                str(self.store),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return {d["name"]: d for d in json.loads(done.stdout)["dependencies"]}

    def running_units(self) -> dict[str, set[str]]:
        """Per VM, the depmirror units systemd runs there now."""
        results = adhoc(
            self.inventories,
            "depmirror_vms",
            "ansible.builtin.command",
            "systemctl list-units --state=active --no-legend --plain depmirror-*",
        )
        for host, result in results.items():
            assert result.get("rc") == 0, f"cannot list the units of {host}: {result.get('msg', result)}"
        return {
            host: {
                line.split()[0].removeprefix("depmirror-").removesuffix(".service")
                for line in r.get("stdout", "").splitlines()
                if line.strip()
            }
            for host, r in results.items()
        }

    def live_upstream(self, dependency: str) -> str:
        """The upstream block nginx on lb1 serves now, read from the release nginx.conf points at."""
        conf = adhoc(self.inventories, "lb1", "ansible.builtin.slurp", "src=/etc/nginx/nginx.conf")["lb1"]
        import base64

        release = re.search(r"include (\S+)/http\.conf;", base64.b64decode(conf["content"]).decode()).group(1)
        http = adhoc(self.inventories, "lb1", "ansible.builtin.slurp", f"src={release}/http.conf")["lb1"]
        text = base64.b64decode(http["content"]).decode()
        name = "depmirror_" + dependency.replace("-", "_")
        block = re.search(rf"upstream {name} \{{(.*?)\}}", text, re.S)
        assert block, f"no upstream {name} in {release}/http.conf"
        return block.group(1)


@dataclass
class Deployment:
    """The module's first two runs: adjust.yml --check on the wiped lab, then adjust.yml for real."""

    check: PlaybookRun
    units_after_check: dict[str, set[str]]
    real: PlaybookRun


@pytest.fixture(scope="module")
def deployment(lab_up: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, Deployment]]:
    # Every test gets the fleet already deployed, whichever order xdist runs them in (CI once ran the
    # RF test before the check-mode test, on a wiped lab).
    fleet = Fleet(tmp_path_factory.mktemp("fleet"), lab_up.inventory)
    wiped = playbook("tests/integration/playbooks/wipe.yml", [lab_up.inventory])
    assert wiped.rc == 0, wiped.stderr
    check = fleet.adjust("--check")
    units_after_check = fleet.running_units()
    real = fleet.adjust()
    assert real.rc == 0, real.messages() or real.stderr
    yield fleet, Deployment(check, units_after_check, real)


@pytest.fixture
def fleet(deployment: tuple[Fleet, Deployment]) -> Fleet:
    return deployment[0]


def planned(run: PlaybookRun) -> dict[str, Any]:
    """The plan a run of adjust.yml computed and applied, by dependency."""
    # run_once on the fleet's first host (delegated to the controller), whatever --limit left in
    hosts = run.task("Compute the replication plan from the graph, the state store and health")["hosts"]
    result = next(iter(hosts.values()))
    return {d["name"]: d for d in result["plan"]["dependencies"]}


def answer_http(port: int) -> str:
    with urllib.request.urlopen(f"http://{LB}:{port}/", timeout=5) as response:
        return response.read().decode()


def answer_tcp(port: int, payload: bytes) -> bytes:
    with socket.create_connection((LB, port), timeout=5) as conn:
        conn.sendall(payload)
        return conn.recv(64)


def test_check_mode_reports_the_changes_adjust_then_makes(deployment: tuple[Fleet, Deployment]) -> None:
    _fleet, runs = deployment
    assert runs.check.rc == 0, runs.check.messages() or runs.check.stderr
    assert runs.check.changed() > 0
    assert all(not units for units in runs.units_after_check.values()), "--check must change nothing"
    assert runs.check.hosts_changed() == runs.real.hosts_changed()


def test_every_dependency_runs_at_its_planned_rf_across_zones_and_answers_through_the_lb(fleet: Fleet) -> None:
    plan = fleet.plan()
    units = fleet.running_units()
    for name, item in plan.items():
        hosts = {i["host"] for i in item["instances"]}
        assert len(hosts) == item["replication_factor"]
        assert {h for h, running in units.items() if name in running} == hosts
        zones = {i["zone"] for i in item["instances"]}
        assert len(zones) == min(item["replication_factor"], 3), f"{name} is not spread across zones"
        if item["kind"] == "http":
            port, host = answer_http(item["port"]).split()
            assert int(port) == item["port"] and host in hosts
        elif item["kind"] == "redis":
            assert answer_tcp(item["port"], b"PING\r\n").startswith(b"+PONG")
        else:
            assert answer_tcp(item["port"], b"hello\n") == b"hello\n"


def test_a_second_run_changes_nothing(fleet: Fleet) -> None:
    again = fleet.adjust()
    assert again.rc == 0, again.messages() or again.stderr
    assert again.changed() == 0, [
        (t["task"]["name"], h) for t in again.tasks() for h, r in t["hosts"].items() if r.get("changed")
    ]


def test_raising_a_tier_adds_a_mirror_in_another_zone_then_lowering_it_unroutes_it_before_stopping(
    fleet: Fleet,
) -> None:
    # One test, because lowering needs the raised state; split, xdist may run them in either order.
    before = fleet.plan()["reports-api"]
    fleet.graph["dependencies"]["reports-api"]["tier"] = 0
    fleet.write()
    run = fleet.adjust()
    assert run.rc == 0, run.messages() or run.stderr
    after = fleet.plan()["reports-api"]
    assert after["replication_factor"] > before["replication_factor"]
    old_zones = {i["zone"] for i in before["instances"]}
    added = [i for i in after["instances"] if i["host"] not in {b["host"] for b in before["instances"]}]
    assert added and all(i["zone"] not in old_zones for i in added)
    upstream = fleet.live_upstream("reports-api")
    for instance in after["instances"]:
        assert f"server {instance['address']}:8083" in upstream

    raised = fleet.plan()["reports-api"]
    fleet.graph["dependencies"]["reports-api"]["tier"] = 3
    fleet.write()
    within = fleet.adjust()
    assert within.rc == 0, within.messages() or within.stderr
    # The run's own plan: the lower RF was first wanted then, so the window had only just begun.
    kept = planned(within)["reports-api"]
    assert kept["replication_factor"] == raised["replication_factor"], "RF fell inside the stabilisation window"
    assert all("reports-api" in fleet.running_units()[i["host"]] for i in raised["instances"])

    time.sleep(WINDOW_S + 1)
    past = fleet.adjust()
    assert past.rc == 0, past.messages() or past.stderr
    lowered = planned(past)["reports-api"]
    assert lowered["replication_factor"] < raised["replication_factor"]
    removed = {i["host"] for i in raised["instances"]} - {i["host"] for i in lowered["instances"]}
    assert removed
    upstream = fleet.live_upstream("reports-api")
    for host in removed:
        address = next(i["address"] for i in raised["instances"] if i["host"] == host)
        assert address not in upstream
        assert "reports-api" not in fleet.running_units()[host]
    swapped = past.task("Swap in nginx.conf pointing at the release, once nginx -t accepts it")
    stopped = past.task("Stop and disable reports-api")
    assert swapped["task"]["duration"]["end"] <= stopped["task"]["duration"]["start"]


def test_an_invalid_upstream_is_refused_and_the_lb_keeps_serving(fleet: Fleet) -> None:
    conf_before = adhoc(fleet.inventories, "lb1", "ansible.builtin.stat", "path=/etc/nginx/nginx.conf")["lb1"]
    port = fleet.plan()["payments-api"]["port"]
    broken = fleet.adjust("-e", json.dumps({"nginx_upstream_location_directives": ["bogus_directive on"]}))
    assert broken.rc != 0
    assert "nginx -t rejected the new upstreams for lb1" in broken.messages()
    assert "bogus_directive" in broken.messages()
    conf_after = adhoc(fleet.inventories, "lb1", "ansible.builtin.stat", "path=/etc/nginx/nginx.conf")["lb1"]
    assert conf_after["stat"]["checksum"] == conf_before["stat"]["checksum"]
    assert answer_http(port).split()[0] == str(port)
