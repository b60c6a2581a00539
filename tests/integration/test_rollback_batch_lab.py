"""rollback.yml with a batch, on the lab: a zone's VMs cut, every primary there switched by one nginx pass.

What a person checks after `rollback.yml -e depmirror_zone=...`: every dependency whose primary ran in the
zone is served from another zone (or, with no healthy mirror left, refused and recorded), exactly one event
per dependency sharing the batch id, nginx reloaded once on the LB, and the dependencies outside the batch
untouched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import depmirror_lab as lab
import pytest
from tests.integration.health_services import BLACKBOX, PROMETHEUS, need
from tests.integration.rollback_fleet import Fleet, environment_has_lab, fleet, nginx_files

from depmirror.store import EventFilter, open_store

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]


@pytest.fixture(scope="module")
def world(lab_up: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    why = environment_has_lab()
    if why:
        pytest.skip(why)
    need(PROMETHEUS, BLACKBOX)
    with fleet(tmp_path_factory.mktemp("rollback-batch-lab"), lab_up) as built:
        yield built


def _plan(world: Fleet) -> list[dict[str, Any]]:
    with open_store(world.store) as store:
        return list((store.applied_plan() or {})["plan"]["dependencies"])


def _reloads(world: Fleet, since: float) -> int:
    """How many times systemd reloaded (or restarted) nginx on lb1 since `since`, from its journal."""
    done = world.ssh("lb1", f"journalctl -u nginx.service -o cat --no-pager --since @{int(since)}")
    assert done.returncode == 0, done.stderr
    return sum(1 for line in done.stdout.splitlines() if line.startswith(("Reloaded", "Started")))


def _all_events(world: Fleet) -> list[Any]:
    with open_store(world.store) as store:
        return store.events(EventFilter(kinds=("rollback", "refused"), limit=500))


def test_a_list_with_a_refused_dependency_switches_the_others_in_one_nginx_pass(world: Fleet) -> None:
    plan = {item["name"]: item for item in _plan(world)}
    catalog, payments = plan["catalog-api"], plan["payments-api"]
    failed = catalog["primary"]["host"]
    # payments-api named by a mirror: not its primary, so refused (and recorded); catalog-api goes on.
    mirror = next(i["host"] for i in payments["instances"] if i["role"] != "primary")
    lab.fault(world.paths, "stop", failed)
    try:
        world.wait_health("catalog-api", failed, "failing")
        since = time.time() - 1
        done, _seconds = world.run(
            "rollback.yml",
            depmirror_dependencies=[f"catalog-api@{failed}", {"dependency": "payments-api", "instance": mirror}],
            depmirror_trigger={"type": "test", "name": "batch-list"},
        )
        assert done.rc != 0, "the batch must end failed when one of its switchovers was refused"
        assert "1 of 2 in batch" in done.messages() and "payments-api" in done.messages()
        assert world.primary("catalog-api") not in (None, failed)
        assert world.primary("payments-api") == payments["primary"]["host"]
        (switched,) = world.events("catalog-api", "rollback")
        assert switched.outcome == "succeeded" and switched.details["batch_size"] == 2
        (refused,) = world.events("payments-api", "refused")
        assert "not the primary" in refused.reason
        assert _reloads(world, since) == 1
    finally:
        lab.restore(world.paths, failed)


def test_a_zone_cut_switches_every_primary_there_with_one_reload_and_one_event_each(world: Fleet) -> None:
    plan = _plan(world)
    primaries = {item["name"]: world.primary(item["name"]) or item["primary"]["host"] for item in plan}
    zone = max(
        ("zone-a", "zone-b", "zone-c"),
        key=lambda z: sum(1 for host in primaries.values() if world.graph.vms[host].zone == z),
    )
    cut = sorted(name for name, vm in world.graph.vms.items() if vm.zone == zone)
    affected = sorted(name for name, host in primaries.items() if world.graph.vms[host].zone == zone)
    untouched = sorted(set(primaries) - set(affected))
    assert len(affected) >= 2, f"{zone} holds the primaries of {affected} only"
    before_events = {e.id for e in _all_events(world)}
    for host in cut:
        lab.fault(world.paths, "stop", host)
    try:
        for name in affected:
            world.wait_health(name, primaries[name], "failing")
        since = time.time() - 1
        done, seconds = world.run(
            "rollback.yml", depmirror_zone=zone, depmirror_trigger={"type": "test", "name": "zone-cut"}
        )
        print(f"\nzone {zone}: {len(affected)} primaries, rollback.yml took {seconds:.1f} s")
        events = [e for e in _all_events(world) if e.id not in before_events]
        by_dependency: dict[str, list[Any]] = {}
        for event in events:
            by_dependency.setdefault(event.dependency, []).append(event)
        assert sorted(by_dependency) == affected, "every affected dependency, and only those, has an event"
        assert all(len(found) == 1 for found in by_dependency.values()), by_dependency
        # The switchovers carried out share the batch id; a dependency refused at its decision (no mirror left,
        # as reports-api at RF 1) is recorded by rollback_target before any batch exists, without one.
        carried = [e for e in events if e.kind == "rollback"]
        assert carried and len({e.details.get("batch") for e in carried}) == 1, [
            (e.dependency, e.details) for e in events
        ]
        switched = [e.dependency for e in events if e.kind == "rollback" and e.outcome == "succeeded"]
        assert switched, done.messages()
        for name in switched:
            assert world.graph.vms[world.primary(name) or ""].zone != zone
        for event in events:
            if event.kind == "refused":
                assert "no healthy instance" in event.reason or "no eligible" in event.reason, event.reason
        assert (done.rc == 0) == (len(switched) == len(affected)), done.messages()
        for name in untouched:
            assert world.primary(name) == primaries[name]
        assert _reloads(world, since) == 1
        assert "nginx" in nginx_files(world)
    finally:
        for host in cut:
            lab.restore(world.paths, host)
    _the_recovered_instances_fail_back_in_one_batch(world, {name: primaries[name] for name in switched})


def _the_recovered_instances_fail_back_in_one_batch(world: Fleet, recovered: dict[str, str]) -> None:
    for name, host in recovered.items():
        world.wait_health(name, host, "healthy", timeout=90)  # the hosts are back; their units start at boot
    before_events = {e.id for e in world_failbacks(world)}
    since = time.time() - 1
    done, seconds = world.run(
        "failback.yml",
        depmirror_dependencies=[f"{name}@{host}" for name, host in recovered.items()],
        depmirror_trigger={"type": "test", "name": "zone-back"},
        rollback_failback_hold_seconds=0,
    )
    print(f"failback of {len(recovered)} in one batch took {seconds:.1f} s")
    assert done.rc == 0, done.messages() or done.stderr[-3000:]
    events = [e for e in world_failbacks(world) if e.id not in before_events]
    assert sorted(e.dependency for e in events) == sorted(recovered)
    assert {e.outcome for e in events} == {"succeeded"}
    assert len({e.details["batch"] for e in events}) == 1
    assert _reloads(world, since) == 1
    release = world.ssh("lb1", "grep -o 'releases/[0-9a-f]*' /etc/nginx/nginx.conf | head -1").stdout.strip()
    routed = world.ssh(
        "lb1", f"cat /etc/nginx/depmirror/{release}/http.conf /etc/nginx/depmirror/{release}/stream.conf"
    )
    for name, host in recovered.items():
        block = routed.stdout.split(f"# {name}:")[1].split("}")[0]
        assert f"# {host} " in block, f"{host} is not routed for {name} after its failback"
        assert world.primary(name) != host  # back as a mirror: the primary role stays where it moved


def world_failbacks(world: Fleet) -> list[Any]:
    with open_store(world.store) as store:
        return store.events(EventFilter(kinds=("failback",), limit=500))
