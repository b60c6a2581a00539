"""POST /alertmanager and the other endpoints, through aiohttp's test client against the real app."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from typing import Any

from tests.fakes.webhook import TOKEN, alert, notification

from depmirror.store import EventFilter


def test_valid_notification_is_queued_and_answered_202(harness: Any) -> None:
    h = harness()

    async def scenario() -> None:
        client = await h.client()
        try:
            response = await h.post(
                client, notification(alert(fingerprint="a1"), alert("cache", "cache-a", "firing", "c1"))
            )
            assert response.status == 202
            assert await response.json() == {"status": "accepted", "queued": 2, "duplicates": 0, "ignored": 0}
            queued = h.store.pending(datetime.now(UTC))
            assert {(a.dependency, a.instance, a.labels["alertname"]) for a in queued} == {
                ("payments", "payments-a", "DependencyDown"),
                ("cache", "cache-a", "DependencyDown"),
            }
            again = await h.post(client, notification(alert(fingerprint="a1")))
            assert (await again.json())["duplicates"] == 1
        finally:
            await client.close()

    asyncio.run(scenario())


def test_wrong_or_missing_credentials_get_401_and_queue_nothing(harness: Any) -> None:
    h = harness()

    async def scenario() -> None:
        client = await h.client()
        try:
            body = json.dumps(notification(alert()))
            assert (await client.post("/alertmanager", data=body)).status == 401
            assert (await h.post(client, body, token="wrong")).status == 401
            assert (await h.post(client, body, token="t0ken-for-tests-and-more")).status == 401
            basic = base64.b64encode(b"user:t0ken-for-tests").decode()
            response = await client.post("/alertmanager", data=body, headers={"Authorization": f"Basic {basic}"})
            assert response.status == 401
            assert (await client.get("/api/v1/events")).status == 401
            assert h.store.queue_depth() == 0
        finally:
            await client.close()

    asyncio.run(scenario())


def test_basic_auth(harness: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("DEPMIRROR_TEST_PASSWORD", "pässword-long-enough-01")
    h = harness(auth={"type": "basic", "username": "am", "password_env": "DEPMIRROR_TEST_PASSWORD"})

    async def scenario() -> None:
        client = await h.client()
        try:
            body = json.dumps(notification(alert()))
            good = base64.b64encode("am:pässword-long-enough-01".encode()).decode()
            bad = base64.b64encode(b"am:password-long-enough-01").decode()
            assert (
                await client.post("/alertmanager", data=body, headers={"Authorization": f"Basic {bad}"})
            ).status == 401
            ok = await client.post("/alertmanager", data=body, headers={"Authorization": f"Basic {good}"})
            assert ok.status == 202
        finally:
            await client.close()

    asyncio.run(scenario())


def test_bad_input_gets_400_with_the_reason(harness: Any) -> None:
    h = harness()
    cases: list[tuple[Any, str]] = [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        ([], "must be a JSON object"),
        ({**notification(alert()), "version": "3"}, 'version must be "4"'),
        (
            {k: v for k, v in notification(alert()).items() if k != "alerts"},
            "alerts must be a non-empty list",
        ),
        ({k: v for k, v in notification(alert()).items() if k != "groupKey"}, "groupKey is missing"),
        (notification({**alert(), "fingerprint": 7}), "alerts[0].fingerprint must be a string"),
        (
            notification({k: v for k, v in alert().items() if k != "startsAt"}),
            "alerts[0].startsAt is missing",
        ),
        (notification({**alert(), "startsAt": "yesterday"}), "not an RFC 3339 time"),
        (notification({**alert(), "labels": {"dependency": 1}}), "must be a string"),
        (notification({**alert(), "status": "pending"}), "must be firing or resolved"),
        (b"[" * 100_000 + b"]" * 100_000, "not acceptable JSON"),
    ]

    async def scenario() -> None:
        client = await h.client()
        try:
            for body, reason in cases:
                response = await h.post(client, body)
                assert response.status == 400, body
                assert reason in (await response.json())["error"]
            assert h.store.queue_depth() == 0
        finally:
            await client.close()

    asyncio.run(scenario())


def test_body_over_the_limit_gets_413(harness: Any) -> None:
    h = harness(max_body_bytes=2048)

    async def scenario() -> None:
        client = await h.client()
        try:
            big = notification(*[alert(fingerprint=f"f{i}") for i in range(40)])
            response = await h.post(client, big)
            assert response.status == 413
            assert "larger than 2048" in (await response.json())["error"]
            assert h.store.queue_depth() == 0
        finally:
            await client.close()

    asyncio.run(scenario())


def test_unknown_dependency_is_recorded_and_ignored(harness: Any) -> None:
    h = harness()

    async def scenario() -> None:
        client = await h.client()
        try:
            response = await h.post(
                client, notification(alert("billing", "billing-a"), alert(fingerprint="f2", action="notify"))
            )
            assert response.status == 202 and (await response.json())["ignored"] == 2
            await h.settle()
            events = h.store.events(EventFilter(kinds=("alert_ignored",)))
            reasons = sorted(e.reason for e in events)
            assert reasons == [
                "action label is 'notify', not rollback",
                "unknown dependency 'billing' (not in the graph)",
            ]
            assert h.store.events(EventFilter(kinds=("rollback",))) == []
            api = await client.get(
                "/api/v1/events",
                params={"kind": "alert_ignored"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert len((await api.json())["events"]) == 2
        finally:
            await client.close()

    asyncio.run(scenario())


def test_health_ready_metrics_and_events_api_errors(harness: Any) -> None:
    h = harness()

    async def scenario() -> None:
        client = await h.client()
        try:
            assert (await client.get("/healthz")).status == 200
            assert (await client.get("/readyz")).status == 200
            await h.post(client, notification(alert()))
            metrics = await (await client.get("/metrics")).text()
            assert 'depmirror_runner_alerts_received_total{status="firing"} 1.0' in metrics
            assert "depmirror_runner_queue_depth 1.0" in metrics
            headers = {"Authorization": f"Bearer {TOKEN}"}
            bad = await client.get("/api/v1/events", params={"since": "last tuesday"}, headers=headers)
            assert bad.status == 400 and "since" in (await bad.json())["error"]
            assert (await client.get("/api/v1/events", params={"limit": "x"}, headers=headers)).status == 400
        finally:
            await client.close()

    asyncio.run(scenario())


def test_an_instance_down_alert_for_the_recorded_primary_is_a_rollback(harness: Any) -> None:
    # After a switchover Prometheus still labels the new primary a mirror (DepmirrorInstanceDown, action
    # adjust) until the monitoring targets are rendered again; the store knows better.
    h = harness()
    h.store.set_primary("payments", "payments-b")

    async def scenario() -> None:
        client = await h.client()
        try:
            down = notification(
                alert(instance="payments-b", fingerprint="b1", action="adjust"),
                alert(instance="payments-c", fingerprint="c1", action="adjust"),
            )
            assert (await h.post(client, down)).status == 202
            await h.settle()
            rollbacks = h.store.events(EventFilter(kinds=("rollback",)))
            assert [(e.instance, e.outcome) for e in rollbacks] == [("payments-b", "shadow")]
            ignored = h.store.events(EventFilter(kinds=("alert_ignored",)))
            assert [(e.instance, e.reason) for e in ignored] == [
                ("payments-c", "action label is 'adjust', not rollback")
            ]
        finally:
            await client.close()

    asyncio.run(scenario())
