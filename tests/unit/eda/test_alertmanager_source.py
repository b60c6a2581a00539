"""The EDA event source depmirror.mirroring.alertmanager, loaded as ansible-rulebook loads it (runpy) and
served on loopback; a real aiohttp client posts to it, and the test reads the queue the rulebook would."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import runpy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import pytest
from tests.fakes.hostile import PAYLOADS, Canaries, fits_fingerprint
from tests.fakes.webhook import TOKEN, alert, free_port, notification

from depmirror.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "extensions" / "eda" / "plugins" / "event_source" / "alertmanager.py"
GRAPH = ROOT / "inventories" / "example" / "graph.yml"
# The example graph places catalog-api on vm-a1 (zone-a), vm-b2 and vm-c2.
DEPENDENCY, HOST, ZONE = "catalog-api", "vm-a1", "zone-a"
FINGERPRINT = "0123456789abcdef"
EVENT_KEYS = {"dependency", "instance", "zone", "status", "action", "alertname", "fingerprint", "startsAt", "trigger"}


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    return runpy.run_path(str(SOURCE))


@contextlib.asynccontextmanager
async def serving(source: dict[str, Any], **args: Any) -> AsyncIterator[tuple[str, asyncio.Queue[Any]]]:
    """main() running as ansible-rulebook runs it (a task, cancelled at the end), ready to receive."""
    port = free_port()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    task = asyncio.create_task(source["main"](queue, {"port": port, "graph": str(GRAPH), **args}))
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            if task.done():
                task.result()  # raises the source's startup error
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the source did not start listening within 5 s")
    try:
        yield url, queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/alertmanager", data=data, headers=bearer() if headers is None else headers) as response,
    ):
        return response.status, await response.json(content_type=None)


def drain(queue: asyncio.Queue[Any]) -> list[dict[str, Any]]:
    events = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return events


def known(**labels: str) -> dict[str, Any]:
    return alert(DEPENDENCY, f"{DEPENDENCY}@{HOST}", fingerprint=FINGERPRINT, action="rollback", **labels)


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("DEPMIRROR_EDA_TOKEN", TOKEN)
    return {"auth": {"type": "bearer", "token_env": "DEPMIRROR_EDA_TOKEN"}}


def test_an_alert_on_a_known_instance_becomes_one_event_of_checked_fields_only(
    source: dict[str, Any], token_env: dict[str, Any]
) -> None:
    async def scenario() -> None:
        async with serving(source, **token_env) as (url, queue):
            # The zone label lies and an annotation carries text: neither reaches the event.
            body = notification(known(zone="zone-c", severity="critical"))
            status, answer = await post(url, body)
            assert (status, answer) == (202, {"status": "accepted", "events": 1, "ignored": 0})
            (event,) = drain(queue)
            received = datetime.fromisoformat(event["trigger"].pop("received_at"))
            assert abs((datetime.now(UTC) - received).total_seconds()) < 5
            assert event == {
                "dependency": DEPENDENCY,
                "instance": HOST,
                "zone": ZONE,
                "status": "firing",
                "action": "rollback",
                "alertname": "DependencyDown",
                "fingerprint": FINGERPRINT,
                "startsAt": "2026-01-01T00:00:00+00:00",
                "trigger": {
                    "type": "alert",
                    "source": "depmirror.mirroring.alertmanager",
                    "alertname": "DependencyDown",
                    "fingerprint": FINGERPRINT,
                    "starts_at": "2026-01-01T00:00:00+00:00",
                },
            }

    asyncio.run(scenario())


def test_alerts_on_unknown_dependencies_or_hosts_or_not_for_rollback_make_no_event(
    source: dict[str, Any], token_env: dict[str, Any]
) -> None:
    async def scenario() -> None:
        async with serving(source, **token_env) as (url, queue):
            body = notification(
                alert("billing", "billing@vm-a1", fingerprint="01"),
                alert(DEPENDENCY, "vm-c1", fingerprint="02"),  # catalog-api does not run on vm-c1
                alert(DEPENDENCY, HOST, fingerprint="03", action="notify"),
                alert(DEPENDENCY, "", fingerprint="04"),
                known(),
            )
            status, answer = await post(url, body)
            assert status == 202 and answer["events"] == 1 and answer["ignored"] == 4
            assert [e["fingerprint"] for e in drain(queue)] == [FINGERPRINT]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong-token-0123456789"),
        bearer(TOKEN + "x"),
        {"Authorization": f"Basic {base64.b64encode(f'eda:{TOKEN}'.encode()).decode()}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer ünï"},
    ],
    ids=["none", "wrong", "longer", "basic-for-bearer", "no-scheme", "non-ascii"],
)
def test_a_request_without_the_token_is_refused_and_makes_no_event(
    source: dict[str, Any], token_env: dict[str, Any], headers: dict[str, str]
) -> None:
    async def scenario() -> None:
        async with serving(source, **token_env) as (url, queue):
            status, answer = await post(url, notification(known()), headers)
            assert status == 401 and answer == {"error": "missing or wrong credentials"}
            assert drain(queue) == []

    asyncio.run(scenario())


def test_basic_auth_needs_both_user_and_password(source: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPMIRROR_EDA_PASSWORD", TOKEN)
    auth = {"type": "basic", "username": "alertmanager", "password_env": "DEPMIRROR_EDA_PASSWORD"}

    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    async def scenario() -> None:
        async with serving(source, auth=auth) as (url, queue):
            assert (await post(url, notification(known()), basic("alertmanager", "nope")))[0] == 401
            assert (await post(url, notification(known()), basic("someone", TOKEN)))[0] == 401
            assert drain(queue) == []
            assert (await post(url, notification(known()), basic("alertmanager", TOKEN)))[0] == 202
            assert len(drain(queue)) == 1

    asyncio.run(scenario())


def test_an_oversize_body_is_refused_with_or_without_a_length(
    source: dict[str, Any], token_env: dict[str, Any]
) -> None:
    big = json.dumps(notification(known(padding="x" * 4000))).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    async def scenario() -> None:
        async with serving(source, max_body_bytes=2048, **token_env) as (url, queue):
            assert await post(url, big) == (413, {"error": "body larger than 2048 bytes"})
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{url}/alertmanager", data=chunks(), headers=bearer()) as response,
            ):
                assert response.status == 413
            assert drain(queue) == []
            assert (await post(url, notification(known())))[0] == 202  # still serving

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON"),
        (b"\xff\xfe", "body is not UTF-8"),
        (b"[]", "body must be a JSON object"),
        (json.dumps({**notification(known()), "version": "3"}).encode(), 'version must be "4"'),
        (b"[" * 100_000, "body is not acceptable JSON"),
    ],
    ids=["bad-json", "not-utf8", "list", "v3", "deep-nesting"],
)
def test_a_body_that_is_not_an_alertmanager_v4_notification_is_a_400_with_the_reason(
    source: dict[str, Any], token_env: dict[str, Any], body: bytes, reason: str
) -> None:
    async def scenario() -> None:
        async with serving(source, max_body_bytes=1_048_576, **token_env) as (url, queue):
            status, answer = await post(url, body)
            assert status == 400 and reason in answer["error"]
            assert drain(queue) == []

    asyncio.run(scenario())


def _hostile_alerts(canaries: Canaries) -> list[tuple[str, str, dict[str, Any]]]:
    """(field, payload text, alert) for every payload in every field an attacker controls."""
    cases = []
    for payload in PAYLOADS:
        for field in ("dependency", "instance", "alertname", "action", "zone", "other", "summary", "url", "fp"):
            text = payload.text(canaries, field)
            if field == "fp" and not fits_fingerprint(text):
                continue
            item = known()
            if field in ("dependency", "instance", "alertname", "action", "zone", "other"):
                item["labels"][field] = text
            elif field == "summary":
                item["annotations"]["summary"] = text
            elif field == "url":
                item["generatorURL"] = text
            else:
                item["fingerprint"] = text
            cases.append((field, text, item))
    return cases


def test_hostile_text_in_any_field_makes_no_event_or_one_without_that_text(
    source: dict[str, Any], token_env: dict[str, Any], tmp_path: Path
) -> None:
    canaries = Canaries(tmp_path)
    cases = _hostile_alerts(canaries)
    # Fields a hostile text may sit in and still leave a good event: they are dropped, not copied.
    dropped = {"zone", "other", "summary", "url"}

    async def scenario() -> None:
        async with serving(source, **token_env) as (url, queue):
            for field, text, item in cases:
                status, answer = await post(url, notification(item))
                assert status in (202, 400), (field, text[:60], status, answer)
                events = drain(queue)
                if field in dropped:
                    assert status == 202 and len(events) == 1, (field, text[:60], answer)
                else:
                    assert events == [], (field, text[:60], events)
                for event in events:
                    assert set(event) == EVENT_KEYS
                    assert (event["dependency"], event["instance"], event["zone"]) == (DEPENDENCY, HOST, ZONE)
                    assert event["fingerprint"] == FINGERPRINT and event["alertname"] == "DependencyDown"
                    assert text not in json.dumps(event)

    asyncio.run(scenario())
    assert len(cases) > 8 * len(PAYLOADS)
    assert canaries.found(deep=(tmp_path,)) == []


@pytest.mark.parametrize(
    ("args", "field", "problem"),
    [
        ({"graph": ""}, "graph", "is required"),
        ({"graph": "/nonexistent/graph.yml"}, "graph", "does not exist"),
        ({"auth": {"type": "none"}, "host": "0.0.0.0"}, "auth.type", "only when listen.host is a loopback"),
        ({"auth": {"type": "bearer", "token_env": "DEPMIRROR_EDA_SHORT"}}, "auth.token", "shorter than 16 bytes"),
        ({"auth": {"type": "bearer", "token": "in-the-rulebook-0123"}}, "auth.token", "not read from the config"),
        ({"auth": {"type": "bearer"}}, "auth.token_env", "is required"),
        ({"portt": 1}, "portt", "unknown argument"),
        ({"port": "5050"}, "port", "must be an integer"),
        ({"max_body_bytes": 10}, "max_body_bytes", "must be an integer in 1024"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_fix(
    source: dict[str, Any], monkeypatch: pytest.MonkeyPatch, args: dict[str, Any], field: str, problem: str
) -> None:
    monkeypatch.setenv("DEPMIRROR_EDA_SHORT", "short")
    with pytest.raises(ConfigError) as raised:
        source["read_settings"]({"graph": str(GRAPH), "auth": {"type": "none"}, **args})
    assert raised.value.field == field and problem in raised.value.problem
    assert "depmirror.mirroring.alertmanager" in str(raised.value)


def test_without_auth_on_loopback_it_serves(source: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with serving(source, auth={"type": "none"}) as (url, queue):
            assert (await post(url, notification(known()), {}))[0] == 202
            assert len(drain(queue)) == 1

    asyncio.run(scenario())


def test_with_a_state_store_the_applied_plan_says_where_instances_run(
    source: dict[str, Any], token_env: dict[str, Any], tmp_path: Path
) -> None:
    from depmirror.store import open_store

    store_url = f"sqlite:///{tmp_path / 'depmirror.db'}"
    with open_store(store_url) as store:
        # adjust moved catalog-api off vm-a1 onto vm-c1 (zone-c).
        moved = [{"host": "vm-c1"}, {"host": "vm-b2"}]
        store.set_applied_plan({"plan": {"dependencies": [{"name": DEPENDENCY, "instances": moved}]}})

    async def scenario() -> None:
        async with serving(source, state_store=store_url, **token_env) as (url, queue):
            body = notification(known(), alert(DEPENDENCY, "vm-c1", fingerprint="0a"))
            status, answer = await post(url, body)
            assert status == 202 and (answer["events"], answer["ignored"]) == (1, 1)
            (event,) = drain(queue)
            assert (event["instance"], event["zone"], event["fingerprint"]) == ("vm-c1", "zone-c", "0a")

    asyncio.run(scenario())


def test_a_store_that_cannot_be_read_is_a_503_so_alertmanager_retries(
    source: dict[str, Any], token_env: dict[str, Any]
) -> None:
    class Unreadable:
        async def current(self) -> Any:
            raise OSError("database is locked")

    settings = source["read_settings"]({"graph": str(GRAPH), **token_env})

    async def scenario() -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        runner = aiohttp.web.AppRunner(source["build_app"](queue, settings, Unreadable()))
        await runner.setup()
        port = free_port()
        await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            status, answer = await post(f"http://127.0.0.1:{port}", notification(known()))
            assert (status, answer) == (503, {"error": "the state store cannot be read right now; retry"})
            assert drain(queue) == []
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
