"""`policy.learning` on the lab (issue 20): three kills of one dependency's primary, each switched by the
runner and failed back, then `adjust.yml`. With the policy off nothing changes; with it on, the dependency's
minimum RF rises (a new instance runs), `explain` cites the three rollback events by id, and the history
records the `rf_change` with the reason `history`.

The fleet is the example graph with catalog-api allowed up to 4 instances and one step of learning worth
two: its RF is 3 by weight, so a raise of the minimum to 4 shows as a fourth instance on the lab.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import depmirror_lab as lab
import pytest
import yaml
from depmirror_lab import failover, watch
from tests.integration.ansible_run import ROOT, PlaybookRun, adhoc, playbook
from tests.integration.health_services import ALERTMANAGER, BLACKBOX, PROMETHEUS, need
from tests.integration.rollback_fleet import environment_has_lab

from depmirror.store import EventFilter, open_store

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]
LB = "198.18.0.2"
DEPENDENCY = "catalog-api"
KILLS = 3
LEARNING = {"window": "1d", "half_life": "1d", "failovers": KILLS, "rf_step": 2}


@dataclass
class Fleet:
    paths: lab.LabPaths
    fleet: failover.Fleet
    watch: watch.Watch

    def set_learning(self, learning: dict[str, Any] | None) -> None:
        data = yaml.safe_load(self.fleet.graph.read_text())
        data["policy"].pop("learning", None)
        if learning is not None:
            data["policy"]["learning"] = learning
        self.fleet.graph.write_text(yaml.safe_dump(data, sort_keys=False))

    def adjust(self) -> PlaybookRun:
        run = playbook("playbooks/adjust.yml", list(self.fleet.inventories))
        assert run.rc == 0, run.messages() or run.stderr[-3000:]
        return run

    def depmirror(self, *args: str) -> str:
        argv = [sys.executable, "-m", "depmirror.cli", *args, "--graph", str(self.fleet.graph)]
        done = subprocess.run(
            [*argv, "--store", self.fleet.store], capture_output=True, text=True, timeout=120, check=True
        )
        return done.stdout


def planned(run: PlaybookRun) -> dict[str, Any]:
    hosts = run.task("Compute the replication plan from the graph, the state store and health")["hosts"]
    return {d["name"]: d for d in next(iter(hosts.values()))["plan"]["dependencies"]}[DEPENDENCY]


@pytest.fixture(scope="module")
def fleet(lab_up: lab.LabPaths, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    why = environment_has_lab()
    if why:
        pytest.skip(why)
    need(PROMETHEUS, BLACKBOX, ALERTMANAGER)
    lab.restore(lab_up)
    wiped = playbook("tests/integration/playbooks/wipe.yml", [lab_up.inventory])
    assert wiped.rc == 0, wiped.messages() or wiped.stderr[-3000:]
    workdir = tmp_path_factory.mktemp("learning")
    graph = yaml.safe_load((ROOT / "inventories/example/graph.yml").read_text())
    graph["dependencies"][DEPENDENCY]["replication"]["max"] = 4
    source = Path(workdir / "source.yml")
    source.write_text(yaml.safe_dump(graph, sort_keys=False))
    deployed = failover.deploy(lab_up, ROOT, workdir / "fleet", source)
    try:
        # The same instance is faulted on purpose: flap damping would hold it back.
        watched = failover.watch_fleet(
            lab_up, deployed, ROOT, healthy_within_s=120, cooldown_s=3.0, flap_max_transitions=100
        )
        yield Fleet(lab_up, deployed, watched)
    finally:
        watch.stop(lab_up)
        lab.restore(lab_up)


def test_three_kills_raise_the_minimum_rf_only_with_the_policy_on(fleet: Fleet) -> None:
    before = json.loads(fleet.depmirror("plan", "--format", "json"))
    item = next(d for d in before["dependencies"] if d["name"] == DEPENDENCY)
    assert (item["replication_factor"], item["rf"]["min"]) == (3, 2)
    started = time.time()
    port = item["port"]
    for _ in range(KILLS):
        result = failover.fault_and_wait(fleet.paths, fleet.watch, "kill", DEPENDENCY, (LB, port), timeout_s=30)
        try:
            assert result.event_kind == "rollback" and result.outcome == "succeeded", result
        finally:
            failover.recover(
                fleet.paths, fleet.watch, ROOT, "kill", DEPENDENCY, result.failed, switched_at=result.switched_at
            )
            time.sleep(3.5)  # the runner's cooldown after the failback
    with open_store(fleet.fleet.store) as store:
        rollbacks = store.events(
            EventFilter(dependency=DEPENDENCY, kinds=("rollback",), since=datetime.fromtimestamp(started, UTC))
        )
    ids = sorted(e.id or 0 for e in rollbacks if e.outcome == "succeeded")
    assert len(ids) == KILLS, [(e.id, e.outcome, e.reason) for e in rollbacks]

    # Policy off: the history is not read, the plan is what it was.
    off = planned(fleet.adjust())
    assert (off["replication_factor"], off["rf"]["min"]) == (3, 2) and "history" not in off["rf"]
    assert not [a for a in off["actions"] if a["action"] == "provision"]

    fleet.set_learning(LEARNING)
    run = fleet.adjust()
    on = planned(run)
    assert on["rf"]["history"]["events"] == ids
    assert on["rf"]["history"]["min"] == 4 and on["replication_factor"] == 4
    assert on["rf"]["reason"].startswith(f"history: {KILLS} failovers within 1d")
    new = [a["host"] for a in on["actions"] if a["action"] == "provision"]
    assert len(new) == 1
    active = adhoc(
        list(fleet.fleet.inventories), new[0], "ansible.builtin.command", f"systemctl is-active depmirror-{DEPENDENCY}"
    )
    assert active[new[0]].get("stdout") == "active", active
    explained = fleet.depmirror("explain", DEPENDENCY)
    assert "(min 2, raised to 4 by the history, max 4)" in explained
    assert "history events: " + ", ".join(f"#{i}" for i in ids) in explained
    with open_store(fleet.fleet.store) as store:
        change = store.events(EventFilter(dependency=DEPENDENCY, kinds=("rf_change",), limit=1))[0]
    assert change.decision == "replication factor 3 -> 4" and change.reason.startswith("history: ")
    assert all(f"#{i}" in change.reason for i in ids)
