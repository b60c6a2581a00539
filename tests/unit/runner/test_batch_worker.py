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

from depmirror.graph.load import load_graph
from depmirror.health.view import HealthView
from depmirror.rollback.flow import Health
from depmirror.rollback.switchover import FastPath, FastPathConfig
from depmirror.runner.actions import ActionRequest
from depmirror.runner.fast_action import REUSE_HEALTH_MAX_AGE_S, FastPathAction, reusable_health
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
    asyncio.run(h.deliver(notification(*alerts)))


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


class PrometheusZoneDown(ZoneDown):
    """ZoneDown as the Prometheus checker answers: `prometheus ...` views carrying each instance's verdict,
    and the graph it reads (the fast path's own, unless `graph` says another)."""

    def __init__(self, fleet: Fleet, graph: Path | None = None) -> None:
        super().__init__(fleet)
        self.graph = load_graph(graph or fleet.graph_path)
        self.zones = {item["name"]: {i["host"]: i["zone"] for i in item["instances"]} for item in fleet.plan}

    async def check(self, dependency: str, failed_instance: str) -> HealthView:
        view = await super().check(dependency, failed_instance)
        verdicts = [
            {"host": host, "verdict": "failing" if zone == DEAD else "healthy", "score": 0.0 if zone == DEAD else 1.0}
            | {"reason": "probe failed" if zone == DEAD else "ok"}
            for host, zone in self.zones.get(dependency, {}).items()
        ]
        return HealthView(
            view.failed_instance,
            view.candidates,
            "prometheus http://127.0.0.1:9",
            {"verdicts": verdicts, "warnings": []},
        )


class CountedHealth:
    """The fast path's own health query, counted: each call is a question to Prometheus."""

    def __init__(self, fleet: Fleet) -> None:
        self.source = fleet.health_without(DEAD)
        self.asked: list[list[str]] = []

    def __call__(self, names: Any) -> dict[str, Health]:
        self.asked.append(sorted(names))
        return self.source(names)


def _counted(tmp_path: Path, fleet: Fleet, lb: LocalLoadBalancer) -> tuple[FastPath, CountedHealth]:
    counted = CountedHealth(fleet)
    config = FastPathConfig(graph=fleet.graph_path, collection=ROOT, nginx=options_for(tmp_path / "lb"))
    return FastPath(config, transport=lb, health=counted), counted


def _zone_down_pass(
    harness: Any, zone: tuple[Fleet, FastPath, LocalLoadBalancer], tmp_path: Path, checker_graph: Path | None = None
) -> tuple[list[Any], list[dict[str, Any]], CountedHealth]:
    """The zone's primaries' alerts in one pass, with the runner's checker reading `checker_graph` (default:
    the fast path's); the rollback events, the dependencies that were down, and the fast path's own queries."""
    fleet, _, lb = zone
    fast, counted = _counted(tmp_path, fleet, lb)
    try:
        h = harness(
            FastPathAction(fast, RecordingAction()),
            PrometheusZoneDown(fleet, graph=checker_graph),
            mode="act",
            store=fleet.store_url,
            dependencies={item["name"]: [i["host"] for i in item["instances"]] for item in fleet.plan},
        )
        down = fleet.primaries_in(DEAD)
        _deliver(h, _alerts(down))
    finally:
        fast.close()
    return h.store.events(EventFilter(kinds=("rollback",), limit=None)), down, counted


def test_the_batch_decides_on_the_pass_s_recheck_without_asking_prometheus_again(
    harness: Any, zone: tuple[Fleet, FastPath, LocalLoadBalancer], tmp_path: Path
) -> None:
    events, down, counted = _zone_down_pass(harness, zone, tmp_path)

    assert sorted(e.dependency for e in events) == sorted(item["name"] for item in down)
    assert {e.outcome for e in events} == {"succeeded"}
    assert counted.asked == []  # one question to Prometheus for the pass (the re-check), not two
    assert {e.details["health_reused"] for e in events} == {True}


def test_a_checker_reading_another_graph_leaves_the_batch_its_own_query(
    harness: Any, zone: tuple[Fleet, FastPath, LocalLoadBalancer], tmp_path: Path
) -> None:
    other = tmp_path / "other-graph.yml"
    other.write_text(zone[0].graph_path.read_text())

    events, down, counted = _zone_down_pass(harness, zone, tmp_path, checker_graph=other)

    assert {e.outcome for e in events} == {"succeeded"}
    assert counted.asked == [sorted(item["name"] for item in down)]
    assert {e.details["health_reused"] for e in events} == {False}


def _request(view: HealthView, at: float) -> ActionRequest:
    return ActionRequest("a1", "rollback", "payments", "payments@vm-a1", {}, "sqlite:///x.db", checked=(view, at))


def _view(source: str = "prometheus http://p", **inputs: Any) -> HealthView:
    good = {"verdicts": [{"host": "vm-b1", "verdict": "healthy", "score": 1.0, "reason": "ok"}], "warnings": []}
    return HealthView("unhealthy", {}, source, {**good, **inputs})


@pytest.mark.parametrize(
    ("view", "age_s"),
    [
        (_view(), REUSE_HEALTH_MAX_AGE_S + 0.1),  # stale: the batch asks again
        (_view(source="test-table"), 0.0),  # not Prometheus's verdicts
        (_view(verdicts="all healthy"), 0.0),
        (_view(verdicts=[{"host": "vm-b1", "verdict": "healthy"}]), 0.0),  # no score, no reason
        (_view(verdicts=["vm-b1"]), 0.0),
        (_view(warnings="none"), 0.0),
    ],
)
def test_a_recheck_the_batch_cannot_trust_as_it_is_is_not_reused(view: HealthView, age_s: float) -> None:
    assert reusable_health(_request(view, 100.0), now=100.0 + age_s) is None


def test_a_fresh_prometheus_recheck_becomes_the_batch_s_health() -> None:
    health = reusable_health(_request(_view(), 100.0), now=100.5)
    assert health is not None
    assert dict(health.scores) == {"vm-b1": 1.0} and dict(health.states) == {"vm-b1": "healthy"}
    assert reusable_health(ActionRequest("a1", "rollback", "p", "p@a", {}, "sqlite:///x.db")) is None
