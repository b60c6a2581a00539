"""kill -9 of `depmirror serve` during a playbook run (ansible-runner, local connection), then restart.

After the restart the cut-off rollback is `interrupted` and is not run again blindly (on_interrupted: hold),
and an alert that was queued but not yet acted on is acted on exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.fakes.webhook import TOKEN, alert, free_port, notification

from depmirror.store import EventFilter, open_store

PLAYBOOK = """
- name: Stand in for rollback.yml, slow for payments
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Record the start, then sleep like a slow switchover
      ansible.builtin.shell: >-
        echo {{ depmirror_dependency }} >> {{ lookup('env', 'TEST_DIR') }}/started;
        echo $$ > {{ lookup('env', 'TEST_DIR') }}/{{ depmirror_dependency }}.pid;
        exec sleep {{ 60 if depmirror_dependency == 'payments' else 0 }}
      changed_when: true
"""


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _http(url: str, body: Any = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


@pytest.fixture
def runner_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_kill_9_mid_action_then_restart(tmp_path: Path, runner_processes: list[Any]) -> None:
    (tmp_path / "rollback.yml").write_text(PLAYBOOK)
    port = free_port()
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "auth": {"type": "bearer", "token_env": "DEPMIRROR_TEST_TOKEN"},
        "store": "history.db",
        "dependencies": ["payments", "cache"],
        "mode": "act",
        "action": {
            "playbook": "rollback.yml",
            "envvars": {"TEST_DIR": str(tmp_path)},
            "timeout_seconds": 120,
        },
        "policy": {"on_unknown_health": "delegate", "on_interrupted": "hold", "max_concurrent_actions": 1},
    }
    (tmp_path / "runner.yml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "DEPMIRROR_TEST_TOKEN": TOKEN,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    command = [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(tmp_path / "runner.yml")]
    base = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        log = (tmp_path / f"runner-{len(runner_processes)}.log").open("wb")
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        runner_processes.append(process)
        _wait_for(lambda: _http(f"{base}/readyz") == 200, 20, "the runner to be ready")
        return process

    started = tmp_path / "started"
    first = start()
    assert _http(f"{base}/alertmanager", notification(alert())) == 202
    _wait_for(lambda: started.exists() and "payments" in started.read_text(), 30, "the payments playbook")
    # The only action slot is busy: this alert is persisted (202) but not acted on before the kill.
    assert _http(f"{base}/alertmanager", notification(alert("cache", "cache-a", fingerprint="c1"))) == 202
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    # The orphaned playbook's sleep (a real deployment's service manager stops the whole cgroup).
    sleeper = int((tmp_path / "payments.pid").read_text())
    os.kill(sleeper, signal.SIGKILL)

    second = start()
    store = open_store(tmp_path / "history.db", create=False)
    try:

        def settled() -> bool:
            kinds = {(e.kind, e.dependency) for e in store.events(EventFilter(limit=None))}
            return {("refused", "payments"), ("rollback", "cache")} <= kinds

        _wait_for(settled, 60, "the re-evaluation and the queued cache rollback")
        events = list(reversed(store.events(EventFilter(limit=None))))
        assert [(e.kind, e.dependency, e.outcome) for e in events] == [
            ("interrupted", "payments", "interrupted"),
            ("refused", "payments", "refused"),
            ("rollback", "cache", "succeeded"),
        ]
        assert "operator needed" in events[1].reason
        assert store.queue_depth() == 0
    finally:
        store.close()
    assert started.read_text().split() == ["payments", "cache"]  # each playbook started exactly once
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
