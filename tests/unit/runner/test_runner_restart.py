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
from tests.unit.runner.conftest import KNOWN_INSTANCES

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


def _start_runner(
    command: list[str], env: dict[str, str], logs: Path, started: list[Any], base: str
) -> subprocess.Popen[bytes]:
    """`depmirror serve` in a session of its own (as under a service manager), once /readyz says 200."""
    log = (logs / f"runner-{len(started)}.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    started.append(process)
    _wait_for(lambda: _http(f"{base}/readyz") == 200, 20, "the runner to be ready")
    return process


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
        "dependencies": KNOWN_INSTANCES,
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
        return _start_runner(command, env, tmp_path, runner_processes, base)

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


TIMELINE_PLAYBOOK = """
- name: Stand in for rollback.yml that writes a timeline; the first run is slow, its retry quick
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    timeline: "{{ lookup('env', 'TEST_DIR') }}/timeline"
    ticks: "{{ 2 if depmirror_retry_of is defined else 40 }}"
  tasks:
    - name: Say which run this is
      ansible.builtin.shell: echo "start {{ depmirror_action_id }} $(date +%s.%N)" >> {{ timeline }}
      changed_when: true

    - name: Work for a while, writing a tick every quarter second
      ansible.builtin.shell: >-
        for i in $(seq {{ ticks }}); do echo "tick {{ depmirror_action_id }} $(date +%s.%N)" >> {{ timeline }};
        sleep 0.25; done
      changed_when: true

    - name: Say the run ended
      ansible.builtin.shell: echo "end {{ depmirror_action_id }} $(date +%s.%N)" >> {{ timeline }}
      changed_when: true

    - name: Publish the new primary
      ansible.builtin.set_stats:
        data:
          depmirror_target: payments-b
"""


def test_kill_9_leaves_no_playbook_running_beside_its_retry(tmp_path: Path, runner_processes: list[Any]) -> None:
    """Without systemd nothing stops the orphaned playbook: the restarted runner must end it before the retry,
    and the history must say what the orphan had done."""
    (tmp_path / "rollback.yml").write_text(TIMELINE_PLAYBOOK)
    port = free_port()
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "auth": {"type": "bearer", "token_env": "DEPMIRROR_TEST_TOKEN"},
        "store": "history.db",
        "dependencies": KNOWN_INSTANCES,
        "mode": "act",
        "action": {"playbook": "rollback.yml", "envvars": {"TEST_DIR": str(tmp_path)}, "timeout_seconds": 120},
        "policy": {"on_unknown_health": "delegate", "on_interrupted": "retry"},
    }
    (tmp_path / "runner.yml").write_text(yaml.safe_dump(config))
    # As systemd would start it: by absolute path, the venv not on PATH (the tools are found beside Python).
    env = {**os.environ, "DEPMIRROR_TEST_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(tmp_path / "runner.yml")]
    base = f"http://127.0.0.1:{port}"
    timeline = tmp_path / "timeline"

    def start() -> subprocess.Popen[bytes]:
        return _start_runner(command, env, tmp_path, runner_processes, base)

    first = start()
    assert _http(f"{base}/alertmanager", notification(alert())) == 202
    _wait_for(lambda: timeline.exists() and timeline.read_text().count("tick") >= 2, 30, "the first run's ticks")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)

    second = start()
    store = open_store(tmp_path / "history.db", create=False)
    try:
        _wait_for(
            lambda: any(e.outcome == "succeeded" for e in store.events(EventFilter(kinds=("rollback",)))),
            60,
            "the retried rollback",
        )
        events = list(reversed(store.events(EventFilter(limit=None))))
    finally:
        store.close()
    runs: dict[str, list[tuple[str, float]]] = {}
    for line in timeline.read_text().split("\n"):
        if line:
            what, run, when = line.split()
            runs.setdefault(run, []).append((what, float(when)))
    assert len(runs) == 2, runs.keys()
    orphan, retry = sorted(runs.values(), key=lambda marks: marks[0][1])
    assert "end" not in {what for what, _ in orphan}, "the orphan ran to its end instead of being stopped"
    retry_start = retry[0][1]
    assert max(when for _, when in orphan) < retry_start, "the orphan still wrote after its retry started"
    assert [what for what, _ in retry][-1] == "end"
    time.sleep(1.0)  # had the orphan survived, its next tick would land now
    assert len(timeline.read_text().split("\n")) == sum(len(marks) for marks in runs.values()) + 1

    assert [(e.kind, e.outcome) for e in events] == [("interrupted", "interrupted"), ("rollback", "succeeded")]
    interrupted = events[0].details
    assert interrupted["orphan"]["process"] == "ended with SIGTERM"
    assert interrupted["external_id"].startswith("pid:")
    assert any("Work for a while" in line for line in interrupted["orphan"]["progress"])
    assert events[1].details["retry_of"] == interrupted["action_id"]
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
