"""The operator API of a real `depmirror serve` process, with a real Alertmanager delivering the alert that
an override holds back: scopes (401/403), a policy set and cleared, `frozen` holding back a real alert (no
action, an event with the would-be action), a dry-run switchover through `depmirror switchover` changing
nothing, the served OpenAPI document equal to docs/openapi.json, and the history metrics on /metrics."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.fakes.webhook import free_port

from depmirror.store import EventFilter, open_store

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
WEBHOOK = "am-to-runner-token-0123456789"
TOKENS = {"read": "reader-token-0123456789", "operate": "operator-token-0123456789", "admin": "admin-token-0123456789"}
pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(not os.path.exists(ALERTMANAGER), reason="needs Debian's prometheus-alertmanager"),
]


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _call(url: str, method: str = "GET", body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    except OSError:
        return 0, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_frozen_holds_back_a_real_alert_and_the_api_answers(tmp_path: Path, processes: list[Any]) -> None:
    runner_port, am_port = free_port(), free_port()
    runner = f"http://127.0.0.1:{runner_port}"
    config = {
        "listen": {"host": "127.0.0.1", "port": runner_port},
        "auth": {
            "type": "bearer",
            "token_env": "WEBHOOK_TOKEN",
            "api_tokens": [
                {"name": f"{scope}-user", "token_env": f"API_{scope.upper()}", "scopes": [scope]} for scope in TOKENS
            ],
        },
        "store": "history.db",
        "dependencies": {"payments": ["payments-a", "payments-b"]},
        "mode": "shadow",
        "policy": {"on_unknown_health": "delegate"},
    }
    (tmp_path / "runner.yml").write_text(yaml.safe_dump(config))
    with open_store(tmp_path / "history.db") as store:
        store.set_primary("payments", "payments-a")
    env = {**os.environ, "WEBHOOK_TOKEN": WEBHOOK, **{f"API_{s.upper()}": t for s, t in TOKENS.items()}}
    log = (tmp_path / "runner.log").open("wb")
    processes.append(
        subprocess.Popen(
            [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(tmp_path / "runner.yml")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    )
    _wait_for(lambda: _call(f"{runner}/readyz")[0] == 200, 20, "the runner")

    # Scopes: nothing without a token, 403 below admin, and the served document is the committed one.
    policy_url = f"{runner}/api/v1/dependencies/payments/policy"
    frozen = {"rollback": "frozen", "expires_in": "1h", "reason": "schema migration"}
    assert _call(policy_url, "PUT", frozen)[0] == 401
    assert _call(policy_url, "PUT", frozen, TOKENS["operate"])[0] == 403
    status, document = _call(f"{runner}/api/v1/openapi.json", token=TOKENS["read"])
    assert status == 200 and document == json.loads((ROOT / "docs" / "openapi.json").read_text())
    status, stored = _call(policy_url, "PUT", frozen, TOKENS["admin"])
    assert status == 200 and stored["override"]["created_by"] == "admin-user"

    am_config = {
        "route": {"receiver": "depmirror", "group_by": ["dependency"], "group_wait": "0s", "group_interval": "1s"},
        "receivers": [
            {
                "name": "depmirror",
                "webhook_configs": [
                    {
                        "url": f"{runner}/alertmanager",
                        "http_config": {"authorization": {"type": "Bearer", "credentials": WEBHOOK}},
                    }
                ],
            }
        ],
    }
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
    processes.append(
        subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            stdout=(tmp_path / "alertmanager.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
    )
    am = f"http://127.0.0.1:{am_port}"
    _wait_for(lambda: _call(f"{am}/-/ready")[0] == 200, 20, "Alertmanager")
    fired = {
        "labels": {"alertname": "DependencyDown", "dependency": "payments", "instance": "payments-a"},
        "startsAt": datetime.now(UTC).isoformat(),
    }
    assert _call(f"{am}/api/v2/alerts", "POST", [fired])[0] == 200

    store = open_store(tmp_path / "history.db")
    try:
        _wait_for(lambda: bool(store.events(EventFilter(kinds=("refused",)))), 20, "the alert to be decided")
        held = store.events(EventFilter(kinds=("refused",)))[0]
        assert held.reason.startswith("held by override #1 (rollback frozen, by admin-user: schema migration")
        assert "would rollback (target health unknown here" in held.reason
        assert store.events(EventFilter(kinds=("rollback",))) == [], "frozen: not even a shadow rollback"

        # A dry run through the CLI: the decision, nothing queued, nothing recorded.
        before = len(store.events(EventFilter(limit=None)))
        cli_env = {**os.environ, "DEPMIRROR_API_TOKEN": TOKENS["operate"]}
        cli = [sys.executable, "-m", "depmirror.cli", "switchover", "payments", "--dry-run", "--runner", runner]
        refused = subprocess.run(cli, env=cli_env, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "would refuse" in refused.stdout and "held by override" in refused.stdout
        assert _call(policy_url, "DELETE", {"reason": "migration done"}, TOKENS["admin"])[0] == 200
        rehearsed = subprocess.run([*cli, "--format", "json"], env=cli_env, capture_output=True, text=True, timeout=60)
        assert rehearsed.returncode == 0, rehearsed.stdout + rehearsed.stderr
        assert json.loads(rehearsed.stdout)["decision"] == "act"
        kinds = [e.kind for e in store.events(EventFilter(limit=None))]
        assert len(kinds) == before + 1 and kinds[0] == "override_end", "a dry run records nothing"
        assert store.queue_depth() == 0 and store.primary("payments") == "payments-a"

        status, stats = _call(f"{runner}/api/v1/history/stats?since=1h", token=TOKENS["read"])
        assert status == 200 and stats["total"]["held"] == 1
        _, metrics = _call(f"{runner}/metrics")
        assert "depmirror_history_stats_updated_timestamp_seconds" in metrics
    finally:
        store.close()
    shutil.rmtree(tmp_path / "am", ignore_errors=True)
