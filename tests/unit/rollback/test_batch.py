"""Batched switchovers on a real nginx (loopback, tests/local_nginx.py) and a real SQLite store.

What a user checks after a zone goes down: every affected dependency switched by one release (one nginx
reload), one event each sharing the batch id, in order of weight; a dependency that is refused, has a bad
upstream, or whose lease was lost does not hold back the others, and nginx keeps serving a valid config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.local_nginx import Backends, Fleet, LocalLoadBalancer, loopback_fleet, options_for, serve_first_release

from depmirror.planner.weights import compute_weights
from depmirror.rollback.batch_release import blamed_dependencies
from depmirror.rollback.decide import RollbackRefused
from depmirror.rollback.nginx import Release
from depmirror.rollback.switchover import (
    FastPath,
    FastPathConfig,
    FastPathFailed,
    LeaseLost,
    Switch,
)
from depmirror.store import EventFilter, ZonalShift, open_store

ROOT = Path(__file__).resolve().parents[3]
DEAD = "zone-a"


@dataclasses.dataclass
class Lab:
    fleet: Fleet
    fast: FastPath
    lb: LocalLoadBalancer

    def switches(self) -> list[Switch]:
        return [Switch(d["name"], d["primary"]["host"], self.fleet.store_url) for d in self.fleet.primaries_in(DEAD)]

    def live(self) -> str:
        """What nginx serves now: the live nginx.conf and the release files it includes."""
        conf = (self.lb.root / "nginx.conf").read_text()
        release = next(line.split()[1].rsplit("/", 1)[0] for line in conf.splitlines() if "http.conf;" in line)
        return conf + (Path(release) / "http.conf").read_text()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    fleet = loopback_fleet(tmp_path, 12, vms_per_zone=2)
    lb = LocalLoadBalancer(tmp_path / "lb")
    config = FastPathConfig(
        graph=fleet.graph_path, collection=ROOT, nginx=options_for(tmp_path / "lb"), verify_requests=2
    )
    fast = FastPath(config, transport=lb, health=fleet.health_without(DEAD))
    serve_first_release(fast, fleet, lb)
    backends = Backends(tmp_path / "backends", fleet.listens(except_zone=DEAD))
    backends.start()
    try:
        yield Lab(fleet, fast, lb)
    finally:
        fast.close()
        lb.stop()
        backends.stop()


def _events(store_url: str) -> list[dict]:
    with open_store(store_url) as store:
        return [e.as_dict() for e in store.events(EventFilter(kinds=("rollback", "refused"), limit=1000))]


def test_a_zone_is_switched_in_one_release_with_one_event_each_sharing_the_batch_id(lab: Lab) -> None:
    switches = lab.switches()
    assert len(switches) >= 3

    result = lab.fast.switch_batch(switches)

    assert [o.status for o in result.outcomes] == ["succeeded"] * len(switches)
    assert lab.lb.reloads() == 1  # nginx's own log: one SIGHUP for the whole zone
    events = _events(lab.fleet.store_url)
    assert sorted(e["dependency"] for e in events) == sorted(s.dependency for s in switches)
    assert {e["details"]["batch"] for e in events} == {result.batch}
    # Decided (and ranked) most critical first.
    weights = compute_weights(lab.fast.graph).weights
    ranked = sorted(events, key=lambda e: e["details"]["batch_rank"])
    assert [weights[e["dependency"]].value for e in ranked] == sorted(
        (weights[s.dependency].value for s in switches), reverse=True
    )
    with open_store(lab.fleet.store_url) as store:
        primaries = store.primaries()
    live = lab.live()
    for event in events:
        assert primaries[event["dependency"]] == event["target"]
        failed = next(
            i for d in lab.fleet.plan if d["name"] == event["dependency"] for i in d["instances"] if i["zone"] == DEAD
        )
        assert f"# {failed['host']} " not in _upstream_of(live, event["dependency"])


def test_a_refused_dependency_does_not_hold_back_the_others(lab: Lab) -> None:
    switches = lab.switches()
    # An alert naming a mirror of the first dependency: not its primary, so nothing to switch over.
    first = next(d for d in lab.fleet.plan if d["name"] == switches[0].dependency)
    mirror = next(i["host"] for i in first["instances"] if i["role"] != "primary")
    switches[0] = dataclasses.replace(switches[0], instance=mirror)

    outcomes = lab.fast.switch_batch(switches).by_dependency()

    assert isinstance(outcomes[first["name"]].error, RollbackRefused)
    assert all(outcomes[s.dependency].status == "succeeded" for s in switches[1:])
    assert lab.lb.reloads() == 1
    kinds = {e["dependency"]: e["kind"] for e in _events(lab.fleet.store_url)}
    assert kinds[first["name"]] == "refused"
    assert len(kinds) == len(switches)


def test_an_upstream_nginx_rejects_is_left_out_and_the_others_are_routed(lab: Lab) -> None:
    switches = lab.switches()
    bad = switches[-1].dependency
    # A mirror that was failing when adjust applied the plan (so nginx does not route it now) and has
    # recovered (live health says healthy), with a port nginx rejects: only the switched upstream is bad.
    with open_store(lab.fleet.store_url) as store:
        record = store.applied_plan()
        assert record is not None
        item = next(d for d in record["plan"]["dependencies"] if d["name"] == bad)
        for instance in item["instances"]:
            if instance["role"] != "primary":
                instance["port"], instance["health"] = 70000, 0.0
        store.set_applied_plan(record)

    outcomes = lab.fast.switch_batch(switches).by_dependency()

    assert outcomes[bad].status == "failed"
    assert isinstance(outcomes[bad].error, FastPathFailed) and outcomes[bad].error.phase == "route"
    assert "nginx rejected its upstream" in str(outcomes[bad].error)
    assert all(outcomes[s.dependency].status == "succeeded" for s in switches[:-1])
    assert lab.lb.reloads() == 1  # the rejected attempt never reached nginx's live config
    assert lab.lb.pid() is not None and ":70000 " not in lab.live()
    failed = [e for e in _events(lab.fleet.store_url) if e["dependency"] == bad]
    assert [(e["kind"], e["outcome"]) for e in failed] == [("rollback", "failed")]


def test_a_dependency_whose_lease_is_lost_mid_batch_drops_out(lab: Lab) -> None:
    switches = lab.switches()
    asked: list[str] = []

    def lost_after_promote() -> bool:
        asked.append("asked")
        return len(asked) < 2  # held before the migrate phase, gone before the route phase

    lost = dataclasses.replace(switches[0], still_mine=lost_after_promote)
    outcomes = lab.fast.switch_batch([lost, *switches[1:]]).by_dependency()

    assert isinstance(outcomes[lost.dependency].error, LeaseLost)
    assert outcomes[lost.dependency].phase == "route"
    assert all(outcomes[s.dependency].status == "succeeded" for s in switches[1:])
    events = _events(lab.fleet.store_url)
    assert lost.dependency not in {e["dependency"] for e in events}  # its lease holder records it
    assert len(events) == len(switches) - 1
    with open_store(lab.fleet.store_url) as store:
        assert store.primary(lost.dependency) == lost.instance
    assert f"# {lost.instance} " in _upstream_of(lab.live(), lost.dependency)


def test_a_batch_of_one_is_the_single_switchover(lab: Lab) -> None:
    switch = lab.switches()[0]

    event = lab.fast.switchover(switch)

    assert event["outcome"] == "succeeded" and event["details"]["batch_size"] == 1
    assert lab.lb.reloads() == 1


def test_nginx_s_complaint_names_the_dependency_whose_upstream_holds_the_line() -> None:
    http = "# Ansible managed\n# alpha: active-active\nupstream a {\n    server x:0;\n}\n# beta: active-passive\n"
    release = Release("/etc/nginx/depmirror/releases/abc", {"http.conf": http}, "")
    said = 'nginx: [emerg] invalid port in upstream "x:0" in /etc/nginx/depmirror/releases/abc/http.conf:4'
    assert blamed_dependencies(said, release) == {"alpha"}
    elsewhere = said.replace("releases/abc", "releases/old")
    assert blamed_dependencies(elsewhere, release) == set()
    assert blamed_dependencies("nginx: [emerg] something without a place", release) == set()


def _upstream_of(live: str, dependency: str) -> str:
    start = live.index(f"# {dependency}: ")
    return live[start : live.index("}", start)]


def test_a_postgresql_dependency_whose_standbys_cannot_be_read_is_refused_by_the_fast_path(tmp_path: Path) -> None:
    # The fast path moves PostgreSQL state itself (tests/unit/rollback/test_batch_postgres.py); here no VM
    # answers SSH, so no standby's WAL position can be read: none may be promoted, and nothing is routed.
    fleet = loopback_fleet(tmp_path, 3, vms_per_zone=1, kind="postgresql")
    lb = LocalLoadBalancer(tmp_path / "lb")
    config = FastPathConfig(graph=fleet.graph_path, collection=ROOT, nginx=options_for(tmp_path / "lb"))
    fast = FastPath(config, transport=lb, health=fleet.health_without(DEAD))
    try:
        (down,) = fleet.primaries_in(DEAD)
        (outcome,) = fast.switch_batch([Switch(down["name"], down["primary"]["host"], fleet.store_url)]).outcomes
    finally:
        fast.close()
    assert outcome.status == "refused" and outcome.event is not None
    assert "position could not be read" in outcome.event["reason"], outcome.event["reason"]
    assert outcome.event["details"]["fenced_first"] is False  # the old primary's host did not answer either
    assert lb.swaps == 0  # nothing reached the load balancer


@pytest.mark.parametrize("shifted", [True, False])
def test_a_batch_routes_away_from_a_shifted_zone_the_instances_it_does_not_switch(lab: Lab, shifted: bool) -> None:
    # Active-active dependencies whose primary is elsewhere, with an instance in the zone: the batch does not
    # switch them, and unless the shift is honoured their instance there keeps taking its share of traffic.
    switched = {d["name"] for d in lab.fleet.primaries_in(DEAD)}
    kept: list[tuple[str, str]] = []
    with open_store(lab.fleet.store_url) as store:
        record = store.applied_plan()
        assert record is not None
        for item in record["plan"]["dependencies"]:
            if item["name"] not in switched:
                item["mode"] = "active-active"
                kept += [(item["name"], i["host"]) for i in item["instances"] if i["zone"] == DEAD]
        store.set_applied_plan(record)
        if shifted:
            now = datetime.now(UTC)
            start, end = now - timedelta(seconds=1), now + timedelta(hours=1)
            store.start_zonal_shift(ZonalShift(DEAD, "drill", "test", start, end))
    assert kept

    result = lab.fast.switch_batch(lab.switches())

    assert {o.status for o in result.outcomes} == {"succeeded"}
    assert lab.lb.reloads() == 1
    live = lab.live()
    for name, host in kept:
        assert (" backup;" in _server_line(live, name, host)) is shifted, (name, host)


def _server_line(live: str, dependency: str, host: str) -> str:
    return next(line for line in _upstream_of(live, dependency).splitlines() if f"# {host} " in line)
