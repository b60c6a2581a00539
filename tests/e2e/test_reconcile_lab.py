"""Reconciliation on the lab (issue 21, "Must show"): a primary is killed, the runner switches over, and with
no human its reconciliation (frontend pyinfra, act mode) provisions a replacement: the dependency is back at
its planned RF, lb1's nginx upstream serves the new instance, and the history holds the `reconcile` event.

The scenario is bench/_rf_restored.py's (which times it): the example graph deployed with `depmirror pyinfra
adjust` on a wiped lab, the lab's watchers, the runner restarted with `reconcile:` enabled.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import depmirror_lab as lab
import pytest
from bench._rf_restored import LB, ReconcileFleet, Restored, kill_and_wait_restored, reconcile_events, start, stop
from depmirror_lab import failover
from tests.integration.health_services import ALERTMANAGER, BLACKBOX, PROMETHEUS, need
from tests.integration.rollback_fleet import environment_has_lab

from depmirror.fleet.applied import plan_of
from depmirror.graph.load import load_graph
from depmirror.rollback.traffic_check import check_traffic
from depmirror.store import open_store

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]
DEPENDENCY = "catalog-api"


@pytest.fixture(scope="module")
def restored(
    lab_up: lab.LabPaths, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ReconcileFleet, Restored]]:
    why = environment_has_lab()
    if why:
        pytest.skip(why)
    need(PROMETHEUS, BLACKBOX, ALERTMANAGER)
    fleet = start(lab_up, tmp_path_factory.mktemp("reconcile"))
    result = None
    try:
        result = kill_and_wait_restored(fleet, DEPENDENCY)
        yield fleet, result
    finally:
        stop(fleet, result)
        lab.restore(lab_up)


def test_the_runner_switches_then_reconciles_the_dependency_back_to_its_planned_rf(
    restored: tuple[ReconcileFleet, Restored],
) -> None:
    fleet, result = restored
    assert result.fault.event_kind == "rollback" and result.fault.outcome == "succeeded", result.fault.to_dict()
    assert result.problem is None, result.to_dict()
    with open_store(fleet.store) as store:
        plan = plan_of(store.applied_plan())
        primary = store.primary(DEPENDENCY)
    item = next(d for d in plan["dependencies"] if d["name"] == DEPENDENCY)
    counted = [i for i in item["instances"] if i.get("counts_towards_rf", True)]
    assert item["replication_factor"] == result.planned_rf == len(counted) == 3
    assert primary == result.fault.target and primary != result.failed
    assert result.replacement is not None and result.replacement in {i["host"] for i in counted}
    assert result.failed not in {i["host"] for i in counted}, "the killed instance counts towards the RF"


def test_the_replacement_runs_and_lb1_serves_it(restored: tuple[ReconcileFleet, Restored]) -> None:
    fleet, result = restored
    assert result.replacement is not None
    graph = load_graph(fleet.graph)
    port = graph.dependencies[DEPENDENCY].port
    address = graph.vms[result.replacement].address
    unit = failover.ssh(fleet.paths, result.replacement, f"systemctl is-active depmirror-{DEPENDENCY}.service")
    assert unit.stdout.strip() == "active", unit.stderr
    # The live release: the one nginx.conf includes (older releases stay on disk, as the last good ones).
    live = "cat $(grep -o '/etc/nginx/depmirror/releases/[^/]*/http.conf' /etc/nginx/nginx.conf | head -1)"
    upstreams = failover.ssh(fleet.paths, "lb1", live)
    assert f"# {DEPENDENCY}:" in upstreams.stdout, upstreams.stdout[-2000:] + upstreams.stderr
    assert f"{address}:{port}" in upstreams.stdout, "the replacement is not in lb1's live upstreams"
    served = check_traffic("http", LB, port, expect=f"{address}:{port}", requests=12, deadline_s=5.0)
    assert served.ok, served.detail
    assert served.served_by and all(str(graph.vms[result.failed].address) not in s for s in served.served_by)


def test_one_reconcile_event_records_the_diff_it_acted_on_and_its_outcome(
    restored: tuple[ReconcileFleet, Restored],
) -> None:
    fleet, result = restored
    events = reconcile_events(fleet.store, DEPENDENCY, result.fault.fault_at - 0.2)
    launched = [e for e in events if e.details.get("launched")]
    assert len(launched) == 1, [(e.outcome, e.reason) for e in events]
    event = launched[0]
    assert event.outcome == "succeeded" and event.action == "adjust"
    assert event.trigger["type"] == "reconcile" and event.details["frontend"] == "pyinfra"
    diff = event.details["diff"]
    assert result.replacement in diff["hosts"]
    assert any(a["action"] == "provision" and a["host"] == result.replacement for a in diff["actions"])
    assert diff["after"]["replication_factor"] == 3
    assert f"provision {result.replacement}" in event.decision
    assert event.duration_s is not None and event.details["operations_changed"] > 0
    # The runner's pass came after its switchover, not before it.
    assert result.fault.switched_at is not None
    assert event.time.timestamp() - (event.duration_s or 0) >= result.fault.switched_at - 0.5


def test_the_runner_log_shows_no_traceback(restored: tuple[ReconcileFleet, Restored]) -> None:
    fleet, _ = restored
    log = Path(fleet.watch.dir / "logs" / "runner.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
