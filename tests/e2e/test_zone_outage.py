"""A zone goes down on the lab, with clients looping through lb1 (issue 16, "Must show").

The example graph's fleet, the lab's watchers (Prometheus scraping and evaluating every second,
Alertmanager with group_wait 0 s, `depmirror serve` on the fast path). Every VM of the zone holding the
most primaries is cut (the cable pulled). What a person checks then: every dependency whose primary ran
there is served from another zone, with exactly one event each, each carrying its batch id; the dependencies outside
the zone are untouched; no request through lb1 to an active-active dependency failed; every Redis write
acknowledged with `WAIT 1` before or during the outage can be read afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import depmirror_lab as lab
import pytest
from depmirror_lab import failover, watch
from depmirror_lab.writes import AckedWrites
from tests.integration.ansible_run import ROOT, playbook
from tests.integration.health_services import ALERTMANAGER, BLACKBOX, PROMETHEUS, need
from tests.integration.rollback_fleet import environment_has_lab

from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.store import EventFilter, open_store

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]
LB = "198.18.0.2"
# Generous: the test asserts that the chain switches the whole zone by itself; bench/zone_outage.py times it.
SWITCHED_WITHIN_S = 30.0
# After the last switch: long enough for Alertmanager to resend and Prometheus to re-evaluate many times.
QUIET_S = 6.0
CLIENT_KINDS = {"http": "http", "grpc": "http", "redis": "redis", "tcp": "tcp"}


@dataclass
class Outage:
    paths: lab.LabPaths
    fleet: failover.Fleet
    watch: watch.Watch
    graph: Graph


@pytest.fixture(scope="module")
def outage(lab_up: lab.LabPaths, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    why = environment_has_lab()
    if why:
        pytest.skip(why)
    need(PROMETHEUS, BLACKBOX, ALERTMANAGER)
    lab.restore(lab_up)
    wiped = playbook("tests/integration/playbooks/wipe.yml", [lab_up.inventory])
    assert wiped.rc == 0, wiped.messages() or wiped.stderr[-3000:]
    fleet = failover.deploy(lab_up, ROOT, tmp_path_factory.mktemp("zone"), ROOT / "inventories/example/graph.yml")
    try:
        watched = failover.watch_fleet(lab_up, fleet, ROOT, healthy_within_s=120, cooldown_s=3.0)
        yield Outage(lab_up, fleet, watched, load_graph(fleet.graph))
    finally:
        watch.stop(lab_up)
        lab.restore(lab_up)


def _plan(store_url: str) -> dict[str, dict[str, Any]]:
    with open_store(store_url) as store:
        record = store.applied_plan() or {}
        primaries = store.primaries()
    items = {item["name"]: item for item in record["plan"]["dependencies"]}
    for name, item in items.items():
        item["_primary"] = primaries.get(name) or item["primary"]["host"]
    return items


def _events_since(store_url: str, since: float) -> list[Any]:
    with open_store(store_url) as store:
        return store.events(
            EventFilter(kinds=("rollback", "refused"), since=datetime.fromtimestamp(since, UTC), limit=1000)
        )


def test_a_zone_cut_switches_every_primary_there_once_with_no_failed_request(outage: Outage) -> None:
    graph, store_url = outage.graph, outage.fleet.store
    plan = _plan(store_url)
    zone_of = {name: vm.zone for name, vm in graph.vms.items()}
    zone = max(
        sorted({vm.zone for vm in graph.vms.values()}),
        key=lambda z: sum(1 for item in plan.values() if zone_of[item["_primary"]] == z),
    )
    affected = sorted(name for name, item in plan.items() if zone_of[item["_primary"]] == zone)
    untouched = sorted(set(plan) - set(affected))
    # A dependency with no instance outside the zone (reports-api runs at RF 1) has nowhere to go: it is
    # refused with its reason, one event too, and the others switch all the same.
    stranded = sorted(n for n in affected if all(zone_of[i["host"]] == zone for i in plan[n]["instances"]))
    movable = sorted(set(affected) - set(stranded))
    assert len(movable) >= 2, f"{zone} holds the primaries of {affected} only"
    active_active = sorted(name for name, item in plan.items() if item.get("mode") == "active-active")
    clients = {
        name: failover.ClientLoop(
            LB, graph.dependencies[name].port, kind=CLIENT_KINDS.get(graph.dependencies[name].kind, "tcp")
        )
        for name in active_active
    }
    writers = {
        name: AckedWrites(LB, graph.dependencies[name].port, tag=name)
        for name in sorted(plan)
        if graph.dependencies[name].kind == "redis"
    }
    for loop in [*clients.values(), *writers.values()]:
        loop.__enter__()
    time.sleep(2.0)  # traffic and acknowledged writes before the fault
    cut_at = time.time()
    try:
        lab.fault(outage.paths, "cut", zone)
        deadline = time.monotonic() + SWITCHED_WITHIN_S
        while time.monotonic() < deadline:
            if {e.dependency for e in _events_since(store_url, cut_at)} >= set(affected):
                break
            time.sleep(0.2)
        time.sleep(QUIET_S)
    finally:
        for loop in [*clients.values(), *writers.values()]:
            loop.__exit__(None, None, None)
    try:
        events = _events_since(store_url, cut_at)
        by_dependency: dict[str, list[Any]] = {}
        for event in events:
            by_dependency.setdefault(event.dependency, []).append(event)
        assert sorted(by_dependency) == affected, "every affected dependency, and only those, has an event"
        assert {name: len(found) for name, found in by_dependency.items()} == dict.fromkeys(affected, 1)
        outcomes = {e.dependency: (e.kind, e.outcome) for e in events}
        assert outcomes == {
            n: ("rollback", "succeeded") if n in movable else ("refused", "refused") for n in affected
        }, [(e.dependency, e.kind, e.outcome, e.reason) for e in events]
        carried = [e for e in events if e.kind == "rollback"]
        # One batch is not promised here: each instance's own alert may reach the runner in its own pass
        # (the lab's alerts fire ~0.2 s apart); bench/zone_outage.py measures batches and reloads.
        assert all(e.details.get("batch") for e in carried), [(e.dependency, e.details) for e in carried]
        after = _plan(store_url)
        for name in movable:
            assert zone_of[after[name]["_primary"]] != zone, (name, after[name]["_primary"])
        for name in untouched:
            assert after[name]["_primary"] == plan[name]["_primary"], name
        failed = {name: loop.errors[:3] for name, loop in clients.items() if loop.errors}
        assert failed == {}, f"failed requests on active-active dependencies: {failed}"
        assert all(loop.sent > 50 for loop in clients.values()), {n: c.sent for n, c in clients.items()}
        for name, writes in writers.items():
            assert writes.acked, f"{name}: no write was acknowledged by a replica"
            assert writes.lost() == [], f"{name}: acknowledged writes lost"
    finally:
        lab.restore(outage.paths, zone)
