"""The runner and the zone alert, in-process with a real config, graph file and SQLite store: the alert
starts one shift (however many runners or resends), queues one switchover per primary in the zone, the
worker acts on them; the shift ends on expiry or once the alert stayed resolved for the hold, queueing the
failbacks. Hostile zone labels are ignored with their reason and select nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from tests.fakes.webhook import TOKEN, RecordingAction, StaticHealth, free_port
from tests.unit.graph_data import base_graph

from depmirror.planner.state import InstanceRecord, State
from depmirror.runner.app import build_app
from depmirror.runner.config import RunnerConfig, load_config
from depmirror.runner.metrics import RunnerMetrics
from depmirror.runner.store_caller import StoreCaller
from depmirror.runner.worker import Worker
from depmirror.runner.zones import ZoneService, zone_service
from depmirror.store import EventFilter, Store, ZonalShift, open_store

# The real clock (the queue compares not_before with it), to the second so that epoch fingerprints match.
T0 = datetime.now(UTC).replace(microsecond=0)
STARTS = "2026-11-29T11:59:50Z"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class ZoneHarness:
    def __init__(self, config: RunnerConfig, clock: Clock, action: Any = None) -> None:
        self.config = config
        self.store = open_store(config.store)
        self.db = StoreCaller(self.store)
        self.metrics = RunnerMetrics()
        self.action = action
        self.health = StaticHealth(candidates={"payments@vm-b1": "healthy", "reports@vm-c1": "healthy"})
        self.worker = Worker(config, self.db, action, self.health, self.metrics)
        zones = zone_service(config, self.db, self.worker.wake.set)
        assert zones is not None
        zones.clock = clock
        self.zones: ZoneService = zones

    async def post(self, *alerts: dict[str, Any]) -> dict[str, Any]:
        app = build_app(self.config, self.db, self.metrics, self.worker.wake.set, lambda: True, zones=self.zones)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        try:
            body = {
                "version": "4",
                "groupKey": '{}:{alertname="DepmirrorZoneDown"}',
                "status": alerts[0]["status"],
                "receiver": "depmirror",
                "alerts": list(alerts),
            }
            response = await client.post(
                "/alertmanager", data=json.dumps(body), headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert response.status == 202, await response.text()
            return dict(await response.json())
        finally:
            await client.close()

    def close(self) -> None:
        self.db.shutdown()
        self.store.close()


def zone_alert(zone: str = "zone-a", status: str = "firing", fingerprint: str = "z1", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "DepmirrorZoneDown", "action": "zonal_shift", "zone": zone, **labels},
        "annotations": {"summary": "zone down"},
        "startsAt": STARTS,
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }


def _applied(store: Store) -> None:
    """payments and reports have their primary in zone-a, sessions in zone-b."""
    state = State(
        instances=(
            InstanceRecord("payments", "vm-a1", "primary", "zone-a"),
            InstanceRecord("payments", "vm-b1", "mirror", "zone-b"),
            InstanceRecord("sessions", "vm-b2", "primary", "zone-b"),
            InstanceRecord("sessions", "vm-a2", "standby", "zone-a"),
            InstanceRecord("reports", "vm-a2", "primary", "zone-a"),
            InstanceRecord("reports", "vm-c1", "mirror", "zone-c"),
        )
    )
    deps: dict[str, list[dict[str, Any]]] = {}
    for record in state.instances:
        deps.setdefault(record.dependency, []).append({"host": record.host, "role": record.role})
    plan = {"dependencies": [{"name": n, "instances": i} for n, i in deps.items()]}
    store.set_applied_plan({"plan": plan, "state": state.to_dict()})


@pytest.fixture
def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("DEPMIRROR_TEST_TOKEN", TOKEN)
    made: list[ZoneHarness] = []

    def build(
        policy: dict[str, Any] | None = None,
        store: str = "h.db",
        runner_policy: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> ZoneHarness:
        graph = base_graph()
        if policy:
            graph["policy"] = {"zonal_shift": policy}
        (tmp_path / "graph.yml").write_text(yaml.safe_dump(graph))
        playbook = tmp_path / "playbooks" / "rollback.yml"
        playbook.parent.mkdir(exist_ok=True)
        playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
        config = {
            "listen": {"host": "127.0.0.1", "port": free_port()},
            "auth": {"type": "bearer", "token_env": "DEPMIRROR_TEST_TOKEN"},
            "store": store,
            "graph": "graph.yml",
            "mode": overrides.pop("mode", "act"),
            "policy": {
                "on_unknown_health": "delegate",
                "failback": True,
                "failback_hold_seconds": 60,
                **(runner_policy or {}),
            },
            **overrides,
        }
        path = tmp_path / f"runner-{len(made)}.yml"
        path.write_text(yaml.safe_dump(config))
        harness = ZoneHarness(load_config(path), Clock(), RecordingAction())
        harness.zones.clock = Clock()
        made.append(harness)
        _applied(harness.store)
        return harness

    yield build
    for harness in made:
        harness.close()


def _pending(store: Store, at: datetime) -> list[tuple[str, str, str, str]]:
    return sorted((a.dependency, a.instance, a.status, a.labels["alertname"]) for a in store.pending(at))


def _events(store: Store) -> list[tuple[str, str]]:
    return [(e.kind, e.outcome) for e in reversed(store.events(EventFilter(limit=None)))]


def test_the_zone_alert_starts_one_shift_and_queues_a_switchover_per_primary(make: Any) -> None:
    h = make()
    answer = asyncio.run(h.post(zone_alert()))
    assert answer["queued"] == 1 and answer["ignored"] == 0
    (shift,) = h.store.zonal_shifts()
    assert shift.zone == "zone-a" and shift.created_by == f"runner:{h.config.runner_id}"
    assert shift.expires_ts - shift.started_ts == timedelta(hours=1)
    assert _pending(h.store, datetime.now(UTC) + timedelta(seconds=1)) == [
        ("payments", "payments@vm-a1", "firing", "ZonalShift"),
        ("reports", "reports@vm-a2", "firing", "ZonalShift"),
    ]
    # Resent (Alertmanager's repeat), and resent again: a duplicate each time, nothing more.
    again = asyncio.run(h.post(zone_alert()))
    asyncio.run(h.post(zone_alert()))
    assert again["queued"] == 0 and again["duplicates"] == 1
    assert len(h.store.zonal_shifts()) == 1 and len(h.store.pending(datetime.now(UTC) + timedelta(seconds=1))) == 2
    assert _events(h.store) == [("zonal_shift", "succeeded")]


def test_the_worker_switches_the_queued_dependencies_over(make: Any) -> None:
    h = make()
    asyncio.run(h.post(zone_alert()))
    asyncio.run(_work(h))
    assert sorted(r.dependency for r in h.action.requests) == ["payments", "reports"]
    assert "sessions" not in [r.dependency for r in h.action.requests]


async def _work(h: ZoneHarness) -> None:
    for _ in range(10):
        await h.worker.dispatch()
        await h.worker.drain(10.0)
        if not h.store.pending(datetime.now(UTC) + timedelta(seconds=1)):
            return


def test_from_the_zone_alert_to_the_failback_with_the_worker(make: Any) -> None:
    h = make(policy={"hold": "0s"}, runner_policy={"cooldown_seconds": 0, "failback_hold_seconds": 0})
    asyncio.run(h.post(zone_alert()))
    asyncio.run(_work(h))
    assert sorted((r.kind, r.dependency) for r in h.action.requests) == [
        ("rollback", "payments"),
        ("rollback", "reports"),
    ]
    asyncio.run(h.post(zone_alert(status="resolved")))
    h.zones.clock.now = datetime.now(UTC)
    assert h.zones.tick(h.store) is True
    h.health.failed = "healthy"  # the zone is back: the old primaries answer again
    asyncio.run(_work(h))
    failbacks = sorted((r.kind, r.dependency, r.instance) for r in h.action.requests if r.kind == "failback")
    assert failbacks == [("failback", "payments", "payments@vm-a1"), ("failback", "reports", "reports@vm-a2")]
    kinds = [k for k, _ in _events(h.store)]
    assert kinds.count("zonal_shift") == 1 and kinds.count("zonal_shift_end") == 1
    assert kinds.count("rollback") == 2 and kinds.count("failback") == 2


@pytest.mark.parametrize(
    ("zone", "reason"),
    [
        ("zone-x", "unknown zone 'zone-x' (not in the graph)"),
        ("{{ lookup('pipe', 'id') }}", "unknown zone \"{{ lookup('pipe', 'id') }}\" (not in the graph)"),
        ("zone-a; rm -rf / #", "unknown zone 'zone-a; rm -rf / #' (not in the graph)"),
        ("zone-a\n", "unknown zone 'zone-a\\n' (not in the graph)"),
        ("z" * 100_000, "unknown zone 'zzzzzzzz"),
        ("", "no 'zone' label"),
    ],
)
def test_a_zone_label_that_names_no_zone_is_ignored_with_its_reason(make: Any, zone: str, reason: str) -> None:
    h = make()
    answer = asyncio.run(h.post(zone_alert(zone=zone)))
    assert answer["ignored"] == 1
    assert h.store.zonal_shifts() == [] and h.store.pending(datetime.now(UTC) + timedelta(seconds=1)) == []
    (event,) = h.store.events()
    assert event.kind == "alert_ignored" and reason in event.reason and len(event.reason) < 200


def test_a_refused_shift_is_recorded_once_per_alert(make: Any) -> None:
    h = make()
    h.store.start_zonal_shift(
        ZonalShift("zone-b", "drill", "alice", T0 - timedelta(minutes=1), T0 + timedelta(hours=1))
    )
    asyncio.run(h.post(zone_alert()))
    asyncio.run(h.post(zone_alert()))
    refused = h.store.events(EventFilter(kinds=("refused",)))
    assert len(refused) == 1 and "max_concurrent is 1" in refused[0].reason
    assert refused[0].action == "zonal_shift" and refused[0].trigger["type"] == "zone_alert"
    assert [s.zone for s in h.store.zonal_shifts()] == ["zone-b"]


def test_shadow_records_what_it_would_do_once(make: Any) -> None:
    for h in (make(mode="shadow", store="a.db"), make(policy={"mode": "shadow"}, store="b.db")):
        asyncio.run(h.post(zone_alert()))
        asyncio.run(h.post(zone_alert()))
        assert h.store.zonal_shifts() == [] and h.store.pending(datetime.now(UTC) + timedelta(hours=2)) == []
        assert _events(h.store) == [("zonal_shift", "shadow")]


def test_mode_off_ignores_the_zone_alert_with_the_reason(make: Any) -> None:
    h = make(policy={"mode": "off"})
    asyncio.run(h.post(zone_alert()))
    (event,) = h.store.events()
    assert event.kind == "alert_ignored" and "policy.zonal_shift.mode is off" in event.reason
    assert h.store.zonal_shifts() == []


def test_several_runners_on_one_store_start_one_shift(make: Any) -> None:
    runners = [make(store="shared.db") for _ in range(3)]

    async def race() -> None:
        await asyncio.gather(*(h.post(zone_alert(fingerprint=f"z{n}")) for n, h in enumerate(runners)))

    asyncio.run(race())
    store = runners[0].store
    assert len(store.zonal_shifts()) == 1
    assert len(store.pending(datetime.now(UTC) + timedelta(seconds=1))) == 2
    assert [k for k, _ in _events(store)].count("zonal_shift") == 1


def test_a_runner_shift_ends_once_the_alert_stayed_resolved_for_the_hold(make: Any) -> None:
    h = make(policy={"hold": "2m"})
    asyncio.run(h.post(zone_alert()))
    (shift,) = h.store.zonal_shifts()
    clock = h.zones.clock
    clock.now = shift.started_ts + timedelta(minutes=5)
    assert h.zones.tick(h.store) is False  # still firing: nothing ends
    asyncio.run(h.post(zone_alert(status="resolved")))
    resolved_at = h.store.latest_alert("", "zone:zone-a")
    assert resolved_at is not None and resolved_at.status == "resolved"
    clock.now = resolved_at.received_at + timedelta(minutes=1)
    h.zones.tick(h.store)
    assert h.store.zonal_shifts()[0].ended_ts is None  # inside the hold
    clock.now = resolved_at.received_at + timedelta(minutes=2, seconds=1)
    assert h.zones.tick(h.store) is True
    (ended,) = h.store.zonal_shifts()
    assert ended.end_reason == "the zone alert resolved and stayed resolved for 2m"
    failbacks = [a for a in h.store.pending(clock.now + timedelta(minutes=2)) if a.status == "resolved"]
    assert sorted((a.dependency, a.instance, a.labels["alertname"]) for a in failbacks) == [
        ("payments", "payments@vm-a1", "ZonalShiftEnd"),
        ("reports", "reports@vm-a2", "ZonalShiftEnd"),
    ]
    assert h.store.events(EventFilter(kinds=("zonal_shift_end",)))[0].details["failback"] is True


def test_a_shift_expires_and_a_persons_shift_ignores_the_alert(make: Any) -> None:
    h = make()
    person = h.store.start_zonal_shift(ZonalShift("zone-c", "drill", "alice", T0, T0 + timedelta(minutes=30)))
    asyncio.run(h.post(zone_alert(zone="zone-c", status="resolved")))
    h.zones.clock.now = T0 + timedelta(minutes=29)
    h.zones.tick(h.store)
    assert h.store.zonal_shifts()[0].ended_ts is None  # resolved alerts do not end a person's shift
    h.zones.clock.now = T0 + timedelta(minutes=31)
    h.zones.tick(h.store)
    (ended,) = h.store.zonal_shifts()
    assert ended.id == person.id and ended.end_reason == "expired" and ended.ended_ts == person.expires_ts


def test_the_loop_runs_and_stops(make: Any) -> None:
    h = make()
    h.store.start_zonal_shift(ZonalShift("zone-c", "drill", "alice", T0, T0 + timedelta(minutes=1)))
    h.zones.clock.now = T0 + timedelta(minutes=2)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(h.zones.run(stop))
        for _ in range(50):
            await asyncio.sleep(0.05)
            if h.store.zonal_shifts()[0].ended_ts is not None:
                break
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    assert h.store.zonal_shifts()[0].end_reason == "expired"


def test_huge_and_hostile_values_in_a_valid_zone_alert_are_data(make: Any) -> None:
    h = make()
    hostile = zone_alert(alertname="{{ lookup('pipe','id') }}" + "x" * 50_000, extra="$(reboot)")
    hostile["annotations"] = {"summary": "{% raw %}" * 1000}
    asyncio.run(h.post(hostile))
    (shift,) = h.store.zonal_shifts()
    assert shift.reason == f"the zone alert has been firing since {STARTS}"
    (event,) = h.store.events(EventFilter(kinds=("zonal_shift",)))
    assert len(event.trigger["alertname"]) == 200
