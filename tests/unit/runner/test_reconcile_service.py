"""`depmirror serve` with `reconcile:` enabled, as a process: an override set from another door (the store,
as `depmirror policy set` writes it) brings a reconciliation pass within seconds, its adjust (ansible-runner,
a real playbook on local hosts) is launched with the changed hosts and the load balancer as its limit, and
the runner stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.fakes.webhook import TOKEN, free_port

from depmirror.fleet.applied import record_applied_plan
from depmirror.fleet.overrides import set_event
from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan
from depmirror.store import EventFilter, Override, open_store

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "example" / "graph.yml"
ADJUST = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Say which host this adjust reached
      ansible.builtin.debug:
        msg: "adjust reached {{ inventory_hostname }}"
"""


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=1) as response:
            return int(response.status) == 200
    except OSError:
        return False


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "rollback.yml").write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
    (playbooks / "adjust.yml").write_text(ADJUST)
    graph = load_graph(EXAMPLE)
    (tmp_path / "hosts.ini").write_text("".join(f"{h} ansible_connection=local\n" for h in [*graph.vms, "lb1"]))
    store = tmp_path / "state.db"
    record_applied_plan(str(store), compute_plan(graph, now=time.time() - 3600).to_dict())
    port = free_port()
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "auth": {"type": "bearer", "token_env": "DEPMIRROR_TEST_TOKEN"},
        "store": str(store),
        "graph": str(EXAMPLE),
        "mode": "act",
        "action": {"playbook": "playbooks/rollback.yml", "work_dir": "work"},
        "reconcile": {
            "enabled": True,
            "frontend": "ansible",
            "inventory": "hosts.ini",
            "interval_seconds": 3600,  # only a trigger can bring a pass within this test
            "min_gap_seconds": 60,
        },
    }
    (tmp_path / "runner.yml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "DEPMIRROR_TEST_TOKEN": TOKEN, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(tmp_path / "runner.yml")]
    log = (tmp_path / "runner.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _ready(base), 30, "the runner to be ready")
        yield process, str(store), tmp_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()


def test_an_override_from_another_door_brings_a_pass_and_an_adjust_limited_to_what_changes(
    runner: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, store_url, tmp_path = runner
    time.sleep(1.5)  # the pass at start: the plan is applied, nothing to do
    with open_store(store_url) as store:
        assert store.events(EventFilter(kinds=("reconcile",))) == []
        now = datetime.now(UTC)
        override = Override("reports-api", 2, None, None, None, "more room", "alice", now, now + timedelta(hours=1))
        store.set_override(override, event=lambda o: set_event(o, source="cli"))
    began = time.monotonic()

    def reconciled() -> list[Any]:
        with open_store(store_url) as store:
            return store.events(EventFilter(kinds=("reconcile",)))

    _wait(lambda: reconciled(), 60, "a reconcile event")
    [event] = reconciled()
    assert time.monotonic() - began < 60
    assert event.dependency == "reports-api" and event.outcome == "succeeded", event.reason
    assert event.trigger["why"] == "override of reports-api"
    limit = event.details["limit"]
    assert "lb1" in limit and len(limit) == 2, limit
    ran = Path(event.details["artifacts"], "stdout").read_text()
    assert {h for h in load_graph(EXAMPLE).vms if f"adjust reached {h}" in ran} == set(limit) - {"lb1"}
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=40) == 0
    assert "Traceback" not in (tmp_path / "runner.log").read_text()
