"""The runner batches: the alerts of a zone that went down, in one dispatch pass, switch every dependency
with one nginx reload (a real nginx on loopback) and leave one runner event per dependency sharing the id."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.webhook import RecordingAction, alert, notification
from tests.local_nginx import Backends, Fleet, LocalLoadBalancer, loopback_fleet, options_for, serve_first_release

from depmirror.health.view import HealthView
from depmirror.rollback.switchover import FastPath, FastPathConfig
from depmirror.runner.fast_action import FastPathAction
from depmirror.store import EventFilter

ROOT = Path(__file__).resolve().parents[3]
DEAD = "zone-a"


class ZoneDown:
    """The runner's re-check as Prometheus would answer it with DEAD down: the alerting primary unhealthy,
    every instance outside DEAD a healthy target."""

    def __init__(self, fleet: Fleet) -> None:
        self.instances = {item["name"]: item["instances"] for item in fleet.plan}

    async def check(self, dependency: str, failed_instance: str) -> HealthView:
        if dependency not in self.instances:
            return HealthView(failed_instance="unknown", source="zone-down")
        return HealthView(
            failed_instance="unhealthy",
            candidates={
                f"{dependency}@{i['host']}": "healthy" for i in self.instances[dependency] if i["zone"] != DEAD
            },
            source="zone-down",
        )


@pytest.fixture
def zone(tmp_path: Path) -> Iterator[tuple[Fleet, FastPath, LocalLoadBalancer]]:
    fleet = loopback_fleet(tmp_path / "fleet", 9, vms_per_zone=2)
    lb = LocalLoadBalancer(tmp_path / "lb")
    config = FastPathConfig(graph=fleet.graph_path, collection=ROOT, nginx=options_for(tmp_path / "lb"))
    fast = FastPath(config, transport=lb, health=fleet.health_without(DEAD))
    serve_first_release(fast, fleet, lb)
    backends = Backends(tmp_path / "backends", fleet.listens(except_zone=DEAD))
    backends.start()
    try:
        yield fleet, fast, lb
    finally:
        fast.close()
        lb.stop()
        backends.stop()


def _deliver(h: Any, alerts: list[dict[str, Any]]) -> None:
    async def deliver() -> None:
        client = await h.client()
        try:
            assert (await h.post(client, notification(*alerts))).status == 202
        finally:
            await client.close()
        await h.settle()

    asyncio.run(deliver())


def _runner(harness: Any, fleet: Fleet, fast: FastPath, playbook: RecordingAction, **more: list[str]) -> Any:
    return harness(
        FastPathAction(fast, playbook),
        ZoneDown(fleet),
        mode="act",
        store=fleet.store_url,
        dependencies={**{item["name"]: [i["host"] for i in item["instances"]] for item in fleet.plan}, **more},
    )


def _alerts(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        alert(dependency=item["name"], instance=f"{item['name']}@{item['primary']['host']}", fingerprint=f"f{n}")
        for n, item in enumerate(items)
    ]


def test_a_zone_s_alerts_in_one_pass_are_one_batch_one_reload_one_event_each(
    harness: Any, zone: tuple[Fleet, FastPath, LocalLoadBalancer]
) -> None:
    fleet, fast, lb = zone
    playbook = RecordingAction()  # the fallback: must not run
    h = _runner(harness, fleet, fast, playbook)
    down = fleet.primaries_in(DEAD)
    assert len(down) >= 2

    _deliver(h, _alerts(down))

    assert playbook.requests == []
    assert lb.reloads() == 1
    events = h.store.events(EventFilter(kinds=("rollback",), limit=None))
    assert sorted(e.dependency for e in events) == sorted(item["name"] for item in down)
    assert {e.outcome for e in events} == {"succeeded"}
    assert len({e.details["batch"] for e in events}) == 1
    assert sorted(e.details["batch_rank"] for e in events) == list(range(1, len(down) + 1))
    for item in down:
        new = h.store.primary(item["name"])
        assert new is not None and new != item["primary"]["host"]


def test_a_dependency_the_fast_path_cannot_decide_falls_back_to_the_playbook_alone(
    harness: Any, zone: tuple[Fleet, FastPath, LocalLoadBalancer]
) -> None:
    fleet, fast, lb = zone
    playbook = RecordingAction(target="vm-b0")
    # `ghost` is known to the runner's config but not to the applied plan: the fast path cannot decide it.
    h = _runner(harness, fleet, fast, playbook, ghost=["vm-a0", "vm-b0"])
    down = fleet.primaries_in(DEAD)
    ghost = alert(dependency="ghost", instance="ghost@vm-a0", fingerprint="ghost")

    _deliver(h, [*_alerts(down), ghost])

    assert [r.dependency for r in playbook.requests] == ["ghost"]
    assert lb.reloads() == 1  # the others still went in one release
    events = {e.dependency: e for e in h.store.events(EventFilter(kinds=("rollback",), limit=None))}
    assert events["ghost"].details["path"] == "playbook"
    assert "fast_path_unavailable" in events["ghost"].details
    assert {events[item["name"]].details["path"] for item in down} == {"fast"}
    assert len({events[item["name"]].details["batch"] for item in down}) == 1
