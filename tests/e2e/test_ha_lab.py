"""Several runners on the lab (issue 17): two `depmirror serve` (fast path) on one PostgreSQL store, two
clustered Alertmanagers each sending every alert to both runners.

The runner holding a switchover is found from the store (its journaled action names its runner_id) and is
killed with SIGKILL from outside at one of two moments, seen from outside only (runner/ and rollback/ have no
test hooks): "after its decision" = its action is in the journal (the store polled every ~10 ms); "after
its nginx swap" = lb1's nginx.conf was replaced (os.replace: a new inode), polled every ~10 ms through
lb1's own root (/proc/PID/root). The other runner must take over once the lease runs out and complete it:
one rollback event, the right primary in the store, no failed client request through lb1.
Each case faults the current primary of one of the two HTTP dependencies with mirrors (three instances each),
the one faulted least so far, so no failback is needed between cases in any order.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import depmirror_lab as lab
import psycopg
import pytest
import yaml
from depmirror_lab import daemons, failover, watch
from depmirror_lab.system import podman_env
from tests.integration.ansible_run import ROOT, playbook
from tests.integration.health_services import ALERTMANAGER, BLACKBOX, PROMETHEUS, need
from tests.integration.rollback_fleet import environment_has_lab
from tests.postgres_server import PostgresServer

from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.store import Event, EventFilter, open_store

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]
LB = "198.18.0.2"
RUNNERS = {"runner": "runner-1", "runner-2": "runner-2"}  # lab daemon name -> runner_id
LEASE_S = 5.0
# Lease expiry (<= LEASE_S after the last renewal) plus one worker pass (docs/ha.md: lease_seconds + ~1 s);
# measured on the lab: 4.9 and 5.6 s.
TAKEOVER_WITHIN_S = LEASE_S + 6.0  # the lease, the next pass, and a loaded 2-core machine
SWITCH_WITHIN_S = 15.0
POLL_S = 0.01
QUIET_S = 6.0
# The example graph's HTTP dependencies with RF 3 (reports-api has RF 1: nothing to fail over to).
FAULTED = ("catalog-api", "payments-api")


@dataclass
class Ha:
    paths: lab.LabPaths
    watch: watch.Watch
    graph: Graph
    store: str
    configs: dict[str, Path]
    lb1_conf: Path
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULTED, 0))

    def next_dependency(self) -> str:
        """The dependency faulted least so far: each has two mirrors, so each can lose its primary twice."""
        dependency = min(FAULTED, key=lambda d: self.faults[d])
        self.faults[dependency] += 1
        return dependency

    def pids(self) -> dict[str, int]:
        running = daemons.running(self.paths)
        return {RUNNERS[name]: running[name] for name in RUNNERS if name in running}

    def start_runner(self, name: str) -> None:
        logs = self.watch.dir / "logs"
        argv = [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(self.configs[name])]
        daemons.start(self.paths, name, argv, logs / f"{name}.log")

    def wait_ready(self) -> None:
        for name in RUNNERS:
            port = yaml.safe_load(self.configs[name].read_text())["listen"]["port"]
            _wait_ok(f"http://127.0.0.1:{port}/readyz")

    def received(self) -> dict[str, float]:
        """runner_id -> alerts it received (its own /metrics), to show that both runners are sent every alert."""
        found = {}
        for name, runner_id in RUNNERS.items():
            port = yaml.safe_load(self.configs[name].read_text())["listen"]["port"]
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {self.watch.token}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    text = response.read().decode()
            except OSError:
                found[runner_id] = -1.0  # down (killed by the test): counts as not received
                continue
            found[runner_id] = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("depmirror_runner_alerts_received_total")
            )
        return found

    def events(self, dependency: str, since: float, kinds: tuple[str, ...]) -> list[Event]:
        with open_store(self.store) as store:
            return store.events(
                EventFilter(dependency=dependency, kinds=kinds, since=datetime.fromtimestamp(since, UTC))
            )

    def actions(self, dependency: str, since: float) -> list[tuple[str, str, Any, Any]]:
        """The journal, read directly (read-only): action_id, runner_id, started, finished."""
        with psycopg.connect(self.store, autocommit=True, connect_timeout=3) as db:
            rows = db.execute(
                "SELECT action_id, runner_id, started_ts, finished_ts FROM actions "
                "WHERE dependency = %s AND started_ts >= %s ORDER BY started_ts",
                (dependency, datetime.fromtimestamp(since, UTC)),
            ).fetchall()
        return [(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]

    def lease_holder(self, dependency: str) -> str | None:
        with psycopg.connect(self.store, autocommit=True, connect_timeout=3) as db:
            row = db.execute("SELECT holder FROM leases WHERE dependency = %s", (dependency,)).fetchone()
        return None if row is None else str(row[0])


def _wait_ok(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready in {timeout_s:.0f}s")


def _lb1_nginx_conf(paths: lab.LabPaths) -> Path:
    """lb1's /etc/nginx/nginx.conf as seen from lb1's mount namespace (its PID 1's root)."""
    done = subprocess.run(
        ["podman", "inspect", "-f", "{{.State.Pid}}", "lb1"],
        env=podman_env(paths.containers_conf),
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    )
    return Path(f"/proc/{int(done.stdout.strip())}/root/etc/nginx/nginx.conf")


def _second_receiver(ha_watch: watch.Watch, runner_2_url: str) -> None:
    """Both Alertmanagers send to both runners (docs/ha.md): the watch wires runner 1 only, so add runner 2's
    webhook to their shared config file and reload each."""
    file = ha_watch.dir / "alertmanager.yml"
    config = yaml.safe_load(file.read_text())
    hooks = config["receivers"][0]["webhook_configs"]
    hooks.append({**hooks[0], "url": f"{runner_2_url}/alertmanager"})
    file.write_text(yaml.safe_dump(config))
    for url in ha_watch.alertmanager_urls:
        with urllib.request.urlopen(urllib.request.Request(f"{url}/-/reload", method="POST"), timeout=5) as answer:
            assert answer.status == 200
        with urllib.request.urlopen(f"{url}/api/v2/status", timeout=5) as answer:
            loaded = json.load(answer)["config"]["original"]
        # Counted, not searched: an Alertmanager may show a webhook's URL as <secret>.
        assert loaded.count("send_resolved: true") == 2, f"{url} did not load runner 2's webhook: {loaded}"


@pytest.fixture(scope="module")
def ha(lab_up: lab.LabPaths, tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> Iterator[Ha]:
    why = environment_has_lab()
    if why:
        pytest.skip(why)
    need(PROMETHEUS, BLACKBOX, ALERTMANAGER)
    lab.restore(lab_up)
    wiped = playbook("tests/integration/playbooks/wipe.yml", [lab_up.inventory])
    assert wiped.rc == 0, wiped.messages() or wiped.stderr[-3000:]
    fleet = failover.deploy(lab_up, ROOT, tmp_path_factory.mktemp("ha"), ROOT / "inventories/example/graph.yml")
    database = postgres_server.create_database()
    store = postgres_server.url(database)
    migrated = subprocess.run(
        [str(ROOT / ".venv/bin/depmirror"), "store", "migrate", "--from", fleet.store, "--to", store],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    try:
        watched = watch.start(
            lab_up,
            watch.WatchSettings(
                graph=fleet.graph,
                store=store,
                inventories=fleet.inventories,
                collection=ROOT,
                cooldown_s=3.0,
                flap_max_transitions=100,
                alertmanagers=2,
            ),
        )
        # The watch's single runner is replaced by two with their own runner_id, on one store.
        daemons.stop(lab_up, "runner")
        base = yaml.safe_load((watched.dir / "runner.yml").read_text())
        configs = {}
        for name, runner_id in RUNNERS.items():
            config = {**base, "runner_id": runner_id, "policy": {**base["policy"], "lease_seconds": LEASE_S}}
            if name != "runner":
                config["listen"] = {**base["listen"], "port": watch._free_port()}
                config["action"] = {**base["action"], "work_dir": str(watched.dir / f"{name}-work")}
            configs[name] = watched.dir / f"{name}.yml"
            configs[name].write_text(yaml.safe_dump(config))
        ha = Ha(lab_up, watched, load_graph(fleet.graph), store, configs, _lb1_nginx_conf(lab_up))
        for name in RUNNERS:
            ha.start_runner(name)
        ha.wait_ready()
        runner_2 = yaml.safe_load(configs["runner-2"].read_text())["listen"]["port"]
        _second_receiver(watched, f"http://127.0.0.1:{runner_2}")
        failover.wait_healthy(watched, timeout_s=120)
        yield ha
    finally:
        daemons.stop(lab_up, "runner-2")
        watch.stop(lab_up)
        lab.restore(lab_up)
        postgres_server.drop_database(database)


def _kill(pid: int) -> float:
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # our child (daemons.start): reap it, or its zombie reads as running
    return killed_at


def _wait_action(ha: Ha, dependency: str, since: float, timeout_s: float) -> tuple[str, str]:
    """Poll the journal every POLL_S until an action for `dependency` is open: (action_id, runner_id)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for action_id, runner_id, _, finished in ha.actions(dependency, since):
            if finished is None:
                return action_id, runner_id
        time.sleep(POLL_S)
    raise AssertionError(f"no action for {dependency} journaled within {timeout_s:.0f}s of the fault")


def _wait_swap(ha: Ha, before: tuple[int, int], timeout_s: float) -> float:
    """Poll lb1's nginx.conf every POLL_S until it is replaced (the swap's os.replace); the time seen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stat = ha.lb1_conf.stat()
        if (stat.st_ino, stat.st_mtime_ns) != before:
            return time.time()
        time.sleep(POLL_S)
    raise AssertionError(f"lb1's nginx.conf was not swapped within {timeout_s:.0f}s")


def _fault(ha: Ha, dependency: str, moment: str | None) -> dict[str, Any]:
    # After an earlier switchover, the probes carry the roles the store records now (as failover.recover does).
    ha.watch.refresh_targets(wait_s=20)
    time.sleep(3.5)  # the runners' cooldown after an earlier switchover of this dependency
    primary = failover.current_primary(ha.store, dependency)
    failover.prepare(ha.paths, "kill", dependency, primary)
    port = ha.graph.dependencies[dependency].port
    received_before = ha.received()
    seen: dict[str, Any] = {"failed": primary, "received_before": received_before}
    with failover.ClientLoop(LB, port, max_seconds=60) as loop:
        time.sleep(0.5)
        conf = ha.lb1_conf.stat()
        fault_at = failover.inject(ha.paths, "kill", dependency, primary)
        seen["fault_at"] = fault_at
        if moment is not None:
            action_id, holder = _wait_action(ha, dependency, fault_at - 0.5, SWITCH_WITHIN_S)
            pid = ha.pids()[holder]
            if moment == "swap":
                seen["swapped_at"] = _wait_swap(ha, (conf.st_ino, conf.st_mtime_ns), SWITCH_WITHIN_S)
            seen.update(action_id=action_id, holder=holder, killed_at=_kill(pid))
            seen["holder_lease"] = ha.lease_holder(dependency)  # its lease, still in force after the kill
        event = failover.wait_event(ha.store, dependency, ("rollback",), fault_at - 0.2, SWITCH_WITHIN_S + LEASE_S)
        time.sleep(QUIET_S)  # the client keeps asking, and a second action would show up
    seen.update(event=event, requests=loop.sent, errors=list(loop.errors), received_after=ha.received())
    return seen


def _check_one_switchover(ha: Ha, dependency: str, seen: dict[str, Any]) -> Event:
    event = seen["event"]
    assert event is not None and event.outcome == "succeeded", event
    rollbacks = ha.events(dependency, seen["fault_at"] - 0.2, ("rollback",))
    assert len(rollbacks) == 1, [(e.id, e.target, e.reason) for e in rollbacks]
    assert event.target and event.target != seen["failed"]
    with open_store(ha.store) as store:
        assert store.primary(dependency) == event.target
    assert seen["errors"] == [], f"{len(seen['errors'])} of {seen['requests']} requests failed: {seen['errors'][:3]}"
    assert seen["requests"] > 50
    return event


def test_both_runners_receive_and_exactly_one_acts(ha: Ha) -> None:
    dependency = ha.next_dependency()
    seen = _fault(ha, dependency, None)
    _check_one_switchover(ha, dependency, seen)
    before, after = seen["received_before"], seen["received_after"]
    assert all(after[r] > before[r] >= 0 for r in after), (before, after)
    actions = ha.actions(dependency, seen["fault_at"] - 0.5)
    assert len(actions) == 1 and actions[0][3] is not None, actions
    assert ha.events(dependency, seen["fault_at"] - 0.2, ("interrupted",)) == []


@pytest.mark.parametrize("moment", ["decision", "swap"])
def test_the_other_runner_completes_a_switchover_whose_runner_was_killed(ha: Ha, moment: str) -> None:
    seen: dict[str, Any] = {}
    dependency = ha.next_dependency()
    try:
        seen = _fault(ha, dependency, moment)
        holder, killed_at = seen["holder"], seen["killed_at"]
        assert seen["holder_lease"] == holder, seen
        print(f"{moment}: holder {holder} (lease {seen['holder_lease']}), killed {killed_at - seen['fault_at']:.3f}s")
        event = _check_one_switchover(ha, dependency, seen)
        interrupted = ha.events(dependency, seen["fault_at"] - 0.2, ("interrupted",))
        # Killed before it recorded: its action was closed by the other runner, not finished by itself.
        assert len(interrupted) == 1, (
            f"the killed runner's action was not taken over: it recorded before the kill at the {moment} moment"
            f" ({[(e.id, e.kind, e.details) for e in interrupted]})"
        )
        survivor = next(r for r in RUNNERS.values() if r != holder)
        assert interrupted[0].details.get("taken_over_by") == survivor, interrupted[0].details
        taken_over_s = interrupted[0].time.timestamp() - killed_at
        switched_s = event.time.timestamp() - killed_at
        print(f"{moment}: taken over {taken_over_s:.2f}s, recorded {switched_s:.2f}s after the kill")
        assert 0 < taken_over_s <= TAKEOVER_WITHIN_S
        assert event.time.timestamp() > killed_at
        actions = ha.actions(dependency, seen["fault_at"] - 0.5)
        assert [a[1] for a in actions] == [holder, survivor] and all(a[3] is not None for a in actions), actions
    finally:
        # The killed runner comes back, so that the next case has two again.
        for name, runner_id in RUNNERS.items():
            if runner_id not in ha.pids():
                ha.start_runner(name)
        ha.wait_ready()
