"""The operator API on a real runner app (aiohttp server, real SQLite store, the real worker): each endpoint,
the scopes, bad input refused naming the field with nothing changed, overrides honoured (frozen holds a
real alert back), switchovers through the queue, and the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from tests.fakes.webhook import TOKEN, RecordingAction, StaticHealth, alert, notification
from tests.unit.runner.conftest import Harness

from depmirror.errors import ConfigError
from depmirror.fleet.overrides import end_expired
from depmirror.runner import policy
from depmirror.runner.api.context import API_KEY
from depmirror.runner.api.openapi import document
from depmirror.runner.health import HealthView
from depmirror.store import EventFilter, Override, QueuedAlert
from depmirror.store.model import utcnow

ROOT = Path(__file__).resolve().parents[3]
TOKENS = {"read": "reader-token-0123456789", "operate": "operator-token-0123456789", "admin": "admin-token-0123456789"}
CANDIDATES = {"payments@payments-b": "healthy", "payments@payments-c": "healthy"}


def static_health(options: dict[str, Any]) -> StaticHealth:
    """The API's health checker, loaded by the runner from its config (health.checker)."""
    return StaticHealth(candidates=CANDIDATES)


@pytest.fixture
def api(write_config: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for scope, token in TOKENS.items():
        monkeypatch.setenv(f"API_{scope.upper()}", token)
    made: list[Harness] = []

    def make(**overrides: Any) -> Any:
        config = write_config(
            mode="act",
            auth={
                "api_tokens": [
                    {"name": f"{scope}-user", "token_env": f"API_{scope.upper()}", "scopes": [scope]}
                    for scope in TOKENS
                ]
            },
            health={"checker": "tests.unit.runner.test_api:static_health"},
            **overrides,
        )
        h = Harness(config, RecordingAction(), StaticHealth(candidates=CANDIDATES))
        made.append(h)
        h.store.set_primary("payments", "payments-a")
        return h

    yield make
    for h in made:
        h.close()


async def _call(h: Any, method: str, path: str, scope: str | None = "admin", body: Any = None) -> tuple[int, Any]:
    client = await h.client()
    try:
        headers = {} if scope is None else {"Authorization": f"Bearer {TOKENS.get(scope, scope)}"}
        data = body if isinstance(body, str | bytes) else (None if body is None else json.dumps(body))
        response = await client.request(method, path, data=data, headers=headers)
        text = await response.text()
        return response.status, json.loads(text) if text.startswith(("{", "[")) else text
    finally:
        await client.close()


def call(h: Any, method: str, path: str, scope: str | None = "admin", body: Any = None) -> tuple[int, Any]:
    return asyncio.run(_call(h, method, path, scope, body))


def _kinds(h: Any) -> list[str]:
    return [e.kind for e in reversed(h.store.events(EventFilter(limit=None)))]


# --- the document -----------------------------------------------------------------------------------
def test_openapi_is_valid_served_and_committed(api: Any) -> None:
    h = api()
    status, served = call(h, "GET", "/api/v1/openapi.json", "read")
    assert status == 200
    validate(served)
    assert served == document()
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == served, "docs/openapi.json is stale: regenerate it (docs/runner.md, API)"


def test_every_documented_operation_is_routed_and_every_api_route_documented(api: Any) -> None:
    h = api()
    asyncio.run(_call(h, "GET", "/api/v1/dependencies", "read"))  # builds h.app
    routed = {
        (route.method, route.resource.canonical)
        for route in h.app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/api/") and route.method != "HEAD"
    }
    documented = {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert documented == routed


# --- scopes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "needs"),
    [
        ("GET", "/api/v1/dependencies", "read"),
        ("GET", "/api/v1/dependencies/payments", "read"),
        ("GET", "/api/v1/history/stats", "read"),
        ("GET", "/api/v1/openapi.json", "read"),
        ("GET", "/api/v1/events", "read"),
        ("GET", "/api/v1/targets", "read"),
        ("PUT", "/api/v1/dependencies/payments/policy", "admin"),
        ("DELETE", "/api/v1/dependencies/payments/policy", "admin"),
        ("POST", "/api/v1/dependencies/payments/switchover", "operate"),
    ],
)
def test_each_endpoint_refuses_without_its_scope(api: Any, method: str, path: str, needs: str) -> None:
    h = api()
    assert call(h, method, path, None)[0] == 401
    assert call(h, method, path, "not-a-token-0123456789")[0] == 401
    order = ["read", "operate", "admin"]
    for scope in order[: order.index(needs)]:
        status, body = call(h, method, path, scope)
        assert status == 403 and needs in body["error"], (scope, body)
    assert _kinds(h) == [], "a refused request changes nothing"


def test_the_webhook_token_reads_but_changes_nothing(api: Any) -> None:
    h = api()
    assert call(h, "GET", "/api/v1/events", TOKEN)[0] == 200
    body = {"rollback": "frozen", "expires_in": "1h", "reason": "x"}
    assert call(h, "PUT", "/api/v1/dependencies/payments/policy", TOKEN, body)[0] == 403


# --- dependencies and policy ------------------------------------------------------------------------
def test_list_and_show_dependencies(api: Any) -> None:
    h = api()
    status, body = call(h, "GET", "/api/v1/dependencies", "read")
    assert status == 200
    assert [d["name"] for d in body["dependencies"]] == ["cache", "payments"]
    payments = next(d for d in body["dependencies"] if d["name"] == "payments")
    assert payments["primary"] == "payments-a" and payments["rollback"] == "auto"
    status, one = call(h, "GET", "/api/v1/dependencies/payments", "read")
    assert status == 200 and one["health"]["candidates"] == CANDIDATES and one["active_overrides"] == []
    status, missing = call(h, "GET", "/api/v1/dependencies/%24%28id%29", "read")
    assert status == 404 and missing["field"] == "name"
    # Braces never match the route at all (aiohttp's {name} excludes them): a plain 404, after the auth check.
    assert call(h, "GET", "/api/v1/dependencies/%7B%7B7*7%7D%7D", "read")[0] == 404
    assert call(h, "GET", "/api/v1/dependencies/%7B%7B7*7%7D%7D", None)[0] == 401


def test_set_show_and_clear_an_override(api: Any) -> None:
    h = api()
    body = {"rf_min": 3, "rollback": "frozen", "expires_in": "2h", "reason": "sale week"}
    status, stored = call(h, "PUT", "/api/v1/dependencies/payments/policy", "admin", body)
    assert status == 200
    assert stored["override"]["created_by"] == "admin-user" and stored["override"]["rf_min"] == 3
    _, one = call(h, "GET", "/api/v1/dependencies/payments", "read")
    assert [o["id"] for o in one["active_overrides"]] == [stored["override"]["id"]]
    assert one["rollback"] == "frozen" and one["effective"]["rf_min"]["value"] == 3
    status, ended = call(h, "DELETE", "/api/v1/dependencies/payments/policy", "admin", {"reason": "sale over"})
    assert status == 200 and ended["override"]["end_reason"] == "cleared by admin-user: sale over"
    assert _kinds(h) == ["override", "override_end"]
    assert call(h, "DELETE", "/api/v1/dependencies/payments/policy", "admin")[0] == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rf_min": 3, "reason": "r"}, "expires_in"),
        ({"rf_min": 3, "expires_in": "31d", "reason": "r"}, "expires_in"),
        ({"rf_min": 3, "expires_in": "{{ 7*7 }}", "reason": "r"}, "expires_in"),
        ({"rf_min": 3, "expires_in": "2h"}, "reason"),
        ({"rf_min": 0, "expires_in": "2h", "reason": "r"}, "rf_min"),
        ({"rf_min": True, "expires_in": "2h", "reason": "r"}, "rf_min"),
        ({"rf_min": 3, "rf_max": 2, "expires_in": "2h", "reason": "r"}, "rf_min"),
        ({"unhealthy": 1.5, "expires_in": "2h", "reason": "r"}, "unhealthy"),
        ({"unhealthy": "NaN", "expires_in": "2h", "reason": "r"}, "unhealthy"),
        ({"rollback": "$(reboot)", "expires_in": "2h", "reason": "r"}, "rollback"),
        ({"expires_in": "2h", "reason": "r"}, "body"),
        ({"rf_min": 2, "expires_in": "2h", "reason": "r", "owner": "x"}, "owner"),
        ([1, 2], "body"),
        ("not json", "body"),
        ("", "body"),
    ],
)
def test_bad_policy_input_names_the_field_and_changes_nothing(api: Any, body: Any, field: str) -> None:
    h = api()
    status, answer = call(h, "PUT", "/api/v1/dependencies/payments/policy", "admin", body)
    assert status == 400 and answer["field"] == field, answer
    assert h.store.overrides(None) == [] and _kinds(h) == []


def _frozen_by_bob(reason: str, created: datetime, expires: datetime) -> Override:
    """payments frozen, as set straight in the store (another runner, or the CLI)."""
    return Override(
        dependency="payments",
        rf_min=None,
        rf_max=None,
        unhealthy=None,
        rollback="frozen",
        reason=reason,
        created_by="bob",
        created_ts=created,
        expires_ts=expires,
    )


def test_an_expired_override_is_ignored_and_recorded_as_ended(api: Any) -> None:
    h = api()
    now = utcnow()
    h.store.set_override(_frozen_by_bob("old", now - timedelta(hours=3), now - timedelta(hours=1)))
    _, one = call(h, "GET", "/api/v1/dependencies/payments", "read")
    assert one["active_overrides"] == [] and one["rollback"] == "auto"
    # The runner's refresh, as its app started, recorded it as ended: once, at its expiry.
    ended = h.store.events(EventFilter(kinds=("override_end",)))
    assert [(e.reason, e.trigger["user"]) for e in ended] == [("expired", f"runner {h.config.runner_id}")]
    assert h.store.overrides(None)[0].ended_ts == now - timedelta(hours=1)
    assert end_expired(h.store, utcnow(), by="test") == [], "ended once"


def test_the_overrides_in_force_are_read_before_the_runner_serves_its_first_request(api: Any) -> None:
    h = api()
    now = utcnow()
    h.store.set_override(_frozen_by_bob("set by another runner", now, now + timedelta(hours=1)))

    async def first_request() -> tuple[bool, int]:
        client = await h.client()  # the app has started: it accepts requests from here on
        try:
            loaded = h.app[API_KEY].book.loaded
            response = await client.post(
                "/api/v1/dependencies/payments/switchover",
                data=json.dumps({"dry_run": False}),
                headers={"Authorization": f"Bearer {TOKENS['operate']}"},
            )
            return loaded, response.status
        finally:
            await client.close()

    assert asyncio.run(first_request()) == (True, 409)
    assert h.store.queue_depth() == 0


# --- overrides honoured by the worker ---------------------------------------------------------------
def _alert_and_settle(h: Any, **labels: Any) -> None:
    async def go() -> None:
        client = await h.client()
        try:
            assert (await h.post(client, notification(alert(**labels)))).status == 202
            await h.settle()
        finally:
            await client.close()

    asyncio.run(go())


def test_frozen_holds_back_a_real_alert_and_records_the_would_be_action(api: Any) -> None:
    h = api()
    body = {"rollback": "frozen", "expires_in": "1h", "reason": "migration"}
    assert call(h, "PUT", "/api/v1/dependencies/payments/policy", "admin", body)[0] == 200
    _alert_and_settle(h)
    assert h.action.requests == [], "frozen: no action"
    held = h.store.events(EventFilter(kinds=("refused",)))[0]
    assert held.reason.startswith("held by override #1 (rollback frozen, by admin-user: migration")
    assert "would rollback to payments@payments-b or payments@payments-c" in held.reason
    assert h.store.primary("payments") == "payments-a"


def test_without_an_override_the_same_alert_acts(api: Any) -> None:
    h = api()
    _alert_and_settle(h)
    assert [r.kind for r in h.action.requests] == ["rollback"]


def test_dry_run_switchover_returns_the_decision_and_changes_nothing(api: Any) -> None:
    h = api()
    status, decision = call(
        h, "POST", "/api/v1/dependencies/payments/switchover", "operate", {"dry_run": True, "target": "payments-c"}
    )
    assert status == 200
    assert decision["decision"] == "act" and decision["candidates"] == ["payments@payments-c"]
    assert h.store.queue_depth() == 0 and _kinds(h) == [] and h.store.primary("payments") == "payments-a"


def test_a_switchover_goes_through_the_queue_to_its_target(api: Any) -> None:
    h = api()
    status, decision = call(
        h, "POST", "/api/v1/dependencies/payments/switchover", "operate", {"dry_run": False, "target": "payments-c"}
    )
    assert status == 202 and decision["queued"] is True
    asyncio.run(h.settle())
    assert [r.candidates for r in h.action.requests] == [("payments@payments-c",)]
    assert h.action.requests[0].trigger["alertname"] == "DepmirrorSwitchover"
    # The history names who asked: the trigger keeps the signed fingerprint.
    (event,) = h.store.events(EventFilter(kinds=("rollback",)))
    assert event.trigger["fingerprint"].startswith("switchover-operate-user-") and event.outcome == "succeeded"


def test_manual_holds_alerts_but_lets_an_operators_switchover_through(api: Any) -> None:
    h = api()
    body = {"rollback": "manual", "expires_in": "1h", "reason": "people decide"}
    assert call(h, "PUT", "/api/v1/dependencies/payments/policy", "admin", body)[0] == 200
    # An alert whose fingerprint imitates an operator's switchover is still an alert.
    _alert_and_settle(h, fingerprint="switchover-admin-user-00-0000", alertname="DepmirrorSwitchover")
    assert h.action.requests == []
    assert call(h, "POST", "/api/v1/dependencies/payments/switchover", "operate", {"dry_run": False})[0] == 202
    asyncio.run(h.settle())
    assert [r.kind for r in h.action.requests] == ["rollback"]


def test_a_frozen_dependency_refuses_a_switchover(api: Any) -> None:
    h = api()
    body = {"rollback": "frozen", "expires_in": "1h", "reason": "migration"}
    call(h, "PUT", "/api/v1/dependencies/payments/policy", "admin", body)
    status, decision = call(h, "POST", "/api/v1/dependencies/payments/switchover", "operate", {"dry_run": False})
    assert status == 409 and decision["decision"] == "refuse" and h.store.queue_depth() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "dry_run"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"dry_run": True, "target": "vm-zz"}, "target"),
        ({"dry_run": True, "target": "payments-a"}, "target"),
        ({"dry_run": True, "target": 7}, "target"),
        ({"dry_run": True, "now": 1}, "now"),
    ],
)
def test_bad_switchover_input(api: Any, body: Any, field: str) -> None:
    h = api()
    status, answer = call(h, "POST", "/api/v1/dependencies/payments/switchover", "operate", body)
    assert status == 400 and answer["field"] == field
    assert h.store.queue_depth() == 0


# --- statistics -------------------------------------------------------------------------------------
def test_history_stats_endpoint_and_metrics(api: Any) -> None:
    h = api()
    _alert_and_settle(h)
    status, stats = call(h, "GET", "/api/v1/history/stats?since=1h&by=vm", "read")
    assert status == 200 and stats["by"] == "vm" and stats["total"]["failovers"] == 1
    assert call(h, "GET", "/api/v1/history/stats?by=host", "read")[1]["field"] == "by"
    assert call(h, "GET", "/api/v1/history/stats?since=soon", "read")[1]["field"] == "since"

    async def scrape() -> str:
        client = await h.client()  # the first refresh runs as the app starts
        try:
            for _ in range(50):
                text = await (await client.get("/metrics")).text()
                if "depmirror_history_failovers{" in text:
                    return text
                await asyncio.sleep(0.05)
            return text
        finally:
            await client.close()

    text = asyncio.run(scrape())
    assert 'depmirror_history_failovers{dependency="payments"} 1.0' in text
    assert 'depmirror_history_fault_to_switched_seconds{dependency="payments",quantile="0.5"}' in text


def test_health_view_of_a_broken_checker_is_unknown() -> None:
    assert HealthView(failed_instance="unknown").healthy_targets() == []


@pytest.mark.parametrize(
    "fingerprint",
    [
        "switchover-",
        "switchover---",
        "switchover-admin-user-00-" + "0" * 32,
        "switchover-\u202e-\x00-x",
        "Switchover-a-b-c",
    ],
)
def test_no_forged_fingerprint_passes_for_an_operators_switchover(api: Any, fingerprint: str) -> None:
    h = api()
    forged = QueuedAlert(fingerprint=fingerprint, starts_at="", status="firing", dependency="payments", instance="x")
    assert not policy.is_manual(forged, h.config)
    signed = policy.manual_fingerprint(h.config, "payments", "abc", "payments-b", "alice")
    genuine = QueuedAlert(
        fingerprint=signed,
        starts_at="",
        status="firing",
        dependency="payments",
        instance="x",
        labels={policy.TARGET_LABEL: "payments-b"},
    )
    assert policy.is_manual(genuine, h.config)
    retargeted = QueuedAlert(**{**_fields(genuine), "labels": {policy.TARGET_LABEL: "payments-c"}})
    assert not policy.is_manual(retargeted, h.config), "the target is signed too"
    other = QueuedAlert(**{**_fields(genuine), "dependency": "cache"})
    assert not policy.is_manual(other, h.config), "and the dependency"


def _fields(alert: Any) -> dict[str, Any]:
    return {name: getattr(alert, name) for name in alert.__slots__}


@pytest.mark.parametrize(
    ("tokens", "field"),
    [
        ("alice", "auth.api_tokens"),
        ([{"token_env": "API_READ", "scopes": ["read"]}], "auth.api_tokens[0].name"),
        ([{"name": "a", "token_env": "API_READ", "scopes": ["root"]}], "auth.api_tokens[0].scopes"),
        ([{"name": "a", "token_env": "API_READ", "scopes": []}], "auth.api_tokens[0].scopes"),
        ([{"name": "a", "token": "in-the-file-0123456789", "scopes": ["read"]}], "auth.api_tokens[0].token"),
        ([{"name": "a", "token_env": "API_SHORT", "scopes": ["read"]}], "auth.api_tokens[0].token"),
        ([{"name": "a", "token_env": "API_UNSET", "scopes": ["read"]}], "auth.api_tokens[0].token_env"),
        (
            [{"name": "a", "token_env": "API_READ"}, {"name": "a", "token_env": "API_ADMIN"}],
            "auth.api_tokens[1].name",
        ),
    ],
)
def test_bad_api_tokens_are_config_errors_naming_the_field(
    write_config: Any, monkeypatch: pytest.MonkeyPatch, tokens: Any, field: str
) -> None:
    monkeypatch.setenv("API_READ", TOKENS["read"])
    monkeypatch.setenv("API_ADMIN", TOKENS["admin"])
    monkeypatch.setenv("API_SHORT", "short")
    monkeypatch.delenv("API_UNSET", raising=False)
    with pytest.raises(ConfigError) as raised:
        write_config(auth={"api_tokens": tokens})
    assert f": {field}:" in str(raised.value), str(raised.value)


def test_api_tokens_are_redacted_from_logs(api: Any) -> None:
    h = api()
    assert set(TOKENS.values()) <= set(h.config.secrets())
    assert "admin-token" not in repr(h.config.auth)
