"""A real Alertmanager (Debian's binary) sends its webhook to a real `depmirror serve`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from depmirror.store import EventFilter, open_store

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
TOKEN = "am-to-runner-token"
pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(not os.path.exists(ALERTMANAGER), reason="needs Debian's prometheus-alertmanager"),
]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _status(url: str, body: Any = None, headers: dict[str, str] | None = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


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


def test_alertmanager_delivers_to_the_runner_with_labels(tmp_path: Path, processes: list[Any]) -> None:
    runner_port, am_port = _free_port(), _free_port()
    runner_config = {
        "listen": {"host": "127.0.0.1", "port": runner_port},
        "auth": {"type": "bearer", "token_env": "DEPMIRROR_RUNNER_TOKEN"},
        "store": "history.db",
        "dependencies": {"payments": ["payments-a", "payments-b"]},
        "mode": "shadow",
        "policy": {"on_unknown_health": "delegate"},
    }
    (tmp_path / "runner.yml").write_text(yaml.safe_dump(runner_config))
    am_config = {
        "route": {
            "receiver": "depmirror",
            "group_by": ["dependency"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "depmirror",
                "webhook_configs": [
                    {
                        "url": f"http://127.0.0.1:{runner_port}/alertmanager",
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}},
                    }
                ],
            }
        ],
    }
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
    env = {**os.environ, "DEPMIRROR_RUNNER_TOKEN": TOKEN}
    runner_log = (tmp_path / "runner.log").open("wb")
    processes.append(
        subprocess.Popen(
            [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(tmp_path / "runner.yml")],
            env=env,
            stdout=runner_log,
            stderr=subprocess.STDOUT,
        )
    )
    _wait_for(lambda: _status(f"http://127.0.0.1:{runner_port}/readyz") == 200, 20, "the runner")
    am_log = (tmp_path / "alertmanager.log").open("wb")
    processes.append(
        subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            stdout=am_log,
            stderr=subprocess.STDOUT,
        )
    )
    am = f"http://127.0.0.1:{am_port}"
    _wait_for(lambda: _status(f"{am}/-/ready") == 200, 20, "Alertmanager")

    fired = {
        "labels": {
            "alertname": "DependencyDown",
            "dependency": "payments",
            "instance": "payments-a",
            "zone": "zone-a",
            "action": "rollback",
        },
        "annotations": {"summary": "payments-a is down"},
        "startsAt": datetime.now(UTC).isoformat(),
        "generatorURL": "http://127.0.0.1/graph",
    }
    unknown = {
        "labels": {"alertname": "DependencyDown", "dependency": "billing", "instance": "billing-a"},
        "startsAt": datetime.now(UTC).isoformat(),
    }
    assert _status(f"{am}/api/v2/alerts", [fired, unknown]) == 200

    store = open_store(tmp_path / "history.db")
    try:

        def delivered() -> bool:
            kinds = {(e.kind, e.dependency) for e in store.events(EventFilter(limit=None))}
            # An unknown dependency's text names nothing in the history (issue 14): the event says "-".
            return {("rollback", "payments"), ("alert_ignored", "-")} <= kinds

        _wait_for(delivered, 20, "Alertmanager's webhook to reach the runner")
        queued = store.latest_alert("payments", "payments-a")
        assert queued is not None
        assert queued.labels == fired["labels"]
        assert queued.annotations == {"summary": "payments-a is down"}
        assert len(queued.fingerprint) == 16  # Alertmanager's own fingerprint, the dedup key
        shadow = store.events(EventFilter(kinds=("rollback",)))[0]
        assert shadow.outcome == "shadow" and shadow.instance == "payments-a"
        assert shadow.details["extra_vars"]["depmirror_failed_instance"] == "payments-a"
        ignored = store.events(EventFilter(kinds=("alert_ignored",)))[0]
        assert "unknown dependency 'billing'" in ignored.reason
        assert ignored.inputs["labels"]["dependency"] == "billing"  # the raw text, kept as evidence
    finally:
        store.close()
    shutil.rmtree(tmp_path / "am", ignore_errors=True)
