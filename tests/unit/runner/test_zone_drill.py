"""A shift of a healthy zone (a drill, an operator's `zone shift`) moves its primaries: the worker treats
the queue items of a shift the store holds active as deliberate moves. An alert from Alertmanager that only
carries the name and the fingerprint of one is judged as any alert: a healthy primary stays."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from tests.fakes.webhook import TOKEN
from tests.unit.runner.test_zones_runner import STARTS, ZoneHarness, _work, make, zone_alert

from depmirror.fleet.zonal_shift import shift_fingerprint
from depmirror.runner.app import build_app
from depmirror.store import EventFilter

__all__ = ["make"]  # the harness fixture, shared with the zone runner tests


def _refusals(h: ZoneHarness) -> list[str]:
    return [e.reason for e in h.store.events(EventFilter(kinds=("refused",), limit=None))]


def test_a_shift_of_a_healthy_zone_moves_its_primaries(make: Any) -> None:
    h = make()
    h.health.failed = "healthy"  # a drill: nothing is down
    asyncio.run(h.post(zone_alert()))
    asyncio.run(_work(h))
    assert sorted(r.dependency for r in h.action.requests) == ["payments", "reports"]
    assert not any("healthy again" in reason for reason in _refusals(h))


def test_once_the_shift_ended_its_items_no_longer_move_a_healthy_primary(make: Any) -> None:
    h = make()
    h.health.failed = "healthy"
    asyncio.run(h.post(zone_alert()))
    assert len(h.store.zonal_shifts()) == 1
    h.store.end_zonal_shift("zone-a", ended_ts=datetime.now(UTC) - timedelta(seconds=1), end_reason="test")
    asyncio.run(_work(h))
    assert h.action.requests == []
    assert sum("healthy again" in reason for reason in _refusals(h)) == 2


def test_a_forged_zonal_shift_alert_does_not_move_a_healthy_primary(make: Any) -> None:
    h = make()
    h.health.failed = "healthy"
    # Hostile: Alertmanager (or whoever can post to it) sends an alert named ZonalShift, with a fingerprint
    # shaped like a shift's, for a zone that no shift in the store covers.
    forged_at = datetime.fromisoformat(STARTS.replace("Z", "+00:00"))
    alert = {
        "status": "firing",
        "labels": {
            "alertname": "ZonalShift",
            "dependency": "payments",
            "instance": "payments@vm-a1",
            "zone": "zone-a",
        },
        "annotations": {},
        "startsAt": STARTS,
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": shift_fingerprint("zone-a", "payments", forged_at),
    }
    asyncio.run(_post(h, alert))
    asyncio.run(_work(h))
    assert h.action.requests == []
    assert _refusals(h) == ["the alerting instance is healthy again"]


async def _post(h: ZoneHarness, alert: dict[str, Any]) -> None:
    app = build_app(h.config, h.db, h.metrics, h.worker.wake.set, lambda: True, zones=h.zones)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        body = {"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "depmirror", "alerts": [alert]}
        response = await client.post(
            "/alertmanager", data=json.dumps(body), headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert response.status == 202, await response.text()
    finally:
        await client.close()
