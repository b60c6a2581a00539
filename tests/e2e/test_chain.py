"""The whole chain on the lab: fault -> Prometheus (1 s scrape and evaluation) -> Alertmanager (group_wait 0 s)
-> `depmirror serve` -> fast-path switchover on nginx -> one event in the history.

One fleet for the module (the example graph, health.samples 1), the watchers started by
`depmirror_lab.watch` as `make demo` starts them. Each test faults the current primary with a client loop
running through the LB, checks what a user checks, then repairs and fails back for the next test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import depmirror_lab as lab
import pytest
import redis
from depmirror_lab import failover, watch
from tests.integration.ansible_run import ROOT, playbook
from tests.integration.health_services import ALERTMANAGER, BLACKBOX, PROMETHEUS, need
from tests.integration.rollback_fleet import environment_has_lab

from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.store import EventFilter, open_store

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]
LB = "198.18.0.2"
# Generous: this asserts that the chain switches by itself, bench/failover.py measures how fast.
SWITCH_WITHIN_S = 15.0
# After a switch, long enough for Alertmanager to resend and Prometheus to re-evaluate many times.
QUIET_S = 6.0


@dataclass
class Chain:
    paths: lab.LabPaths
    fleet: failover.Fleet
    watch: watch.Watch
    graph: Graph

    def fault(self, kind: str, dependency: str) -> failover.FaultResult:
        port = self.graph.dependencies[dependency].port
        return failover.fault_and_wait(self.paths, self.watch, kind, dependency, (LB, port), timeout_s=30)

    def rollbacks_since(self, dependency: str, since: float) -> list[Any]:
        with open_store(self.fleet.store) as store:
            return store.events(
                EventFilter(dependency=dependency, kinds=("rollback",), since=datetime.fromtimestamp(since, UTC))
            )

    def recover(self, result: failover.FaultResult) -> None:
        failover.recover(
            self.paths, self.watch, ROOT, result.kind, result.dependency, result.failed, switched_at=result.switched_at
        )
        time.sleep(3.5)  # the runner's cooldown after the failback


@pytest.fixture(scope="module")
def chain(lab_up: lab.LabPaths, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    why = environment_has_lab()
    if why:
        pytest.skip(why)
    need(PROMETHEUS, BLACKBOX, ALERTMANAGER)
    lab.restore(lab_up)
    wiped = playbook("tests/integration/playbooks/wipe.yml", [lab_up.inventory])
    assert wiped.rc == 0, wiped.messages() or wiped.stderr[-3000:]
    fleet = failover.deploy(lab_up, ROOT, tmp_path_factory.mktemp("chain"), ROOT / "inventories/example/graph.yml")
    try:
        # The module faults the same few instances on purpose: flap damping would hold them back.
        watched = failover.watch_fleet(
            lab_up, fleet, ROOT, healthy_within_s=120, cooldown_s=3.0, flap_max_transitions=100
        )
        yield Chain(lab_up, fleet, watched, load_graph(fleet.graph))
    finally:
        watch.stop(lab_up)
        lab.restore(lab_up)


def _check_switched(chain: Chain, result: failover.FaultResult) -> None:
    assert result.event_kind == "rollback" and result.outcome == "succeeded", result
    assert result.target and result.target != result.failed
    assert result.fault_to_switched_s is not None and 0 < result.fault_to_switched_s < SWITCH_WITHIN_S
    time.sleep(QUIET_S)
    events = chain.rollbacks_since(result.dependency, result.fault_at - 0.2)
    assert len(events) == 1, [(e.id, e.instance, e.target, e.reason) for e in events]
    assert events[0].details["path"] == "fast" and events[0].instance.endswith(result.failed)
    with open_store(chain.fleet.store) as store:
        assert store.primary(result.dependency) == result.target


@pytest.mark.parametrize("kind", ["kill", "hang", "cut"])
def test_a_failed_http_primary_moves_to_a_mirror_with_no_failed_request_and_one_event(chain: Chain, kind: str) -> None:
    result = chain.fault(kind, "catalog-api")
    try:
        _check_switched(chain, result)
        assert result.client_errors == [], f"{len(result.client_errors)} of {result.requests} failed"
        assert result.requests > 20
        served = failover.ClientLoop(LB, chain.graph.dependencies["catalog-api"].port, max_requests=20)
        with served:
            time.sleep(1)
        assert served.errors == []
    finally:
        chain.recover(result)


def test_a_killed_redis_primary_is_replaced_by_a_promoted_replica_the_lb_routes_to(chain: Chain) -> None:
    dependency = chain.graph.dependencies["session-cache"]
    result = chain.fault("kill", dependency.name)
    try:
        _check_switched(chain, result)
        # nginx's stream proxy can retry a connection the dead primary refuses, but not a PING it had already
        # forwarded when SIGKILL came: with one client request at a time, at most that one is lost.
        assert len(result.client_errors) <= 1, f"{len(result.client_errors)} of {result.requests} PINGs failed"
        through_lb = redis.Redis(LB, dependency.port, socket_timeout=2)
        assert through_lb.execute_command("ROLE")[0] == b"master"
        assert through_lb.set("depmirror-e2e", "after-switch")
        target = chain.graph.vms[result.target].address
        with open_store(chain.fleet.store) as store:
            routed = next(d for d in store.applied_plan()["plan"]["dependencies"] if d["name"] == dependency.name)
        replicas = [i for i in routed["instances"] if i["host"] != result.target]
        assert result.failed not in {i["host"] for i in routed["instances"]}, "the failed primary is still routed"
        for replica in replicas:
            info = redis.Redis(replica["address"], dependency.port, socket_timeout=1).info("replication")
            assert info["role"] == "slave" and info["master_host"] == target, (replica["host"], info)
    finally:
        chain.recover(result)
