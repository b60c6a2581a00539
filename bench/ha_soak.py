"""HA soak: 3 runners (`depmirror serve`, act mode, ansible-runner) on one PostgreSQL; bounded bursts of
alerts over 50 dependencies; a runner killed with SIGKILL every few seconds and restarted; PostgreSQL
restarted once mid-run (docs/ha.md).

Each action runs a tiny local playbook that writes when it started and ended, so overlaps are read from
what really ran as well as from the action journal. Needs Debian's postgresql-15 (a throwaway cluster on
loopback, as the tests start) and root (initdb runs as the postgres user).

Writes bench/results/ha_soak.json: alerts_accepted, alerts_lost (accepted but ending in no event: must be
0), overlapping_actions (two journaled actions of one dependency at once: must be 0), playbook_overlaps
(the same from the playbooks' own timestamps), actions, ack_p99_ms (target <= 50), takeover_p99_s (a
killed runner's open action closed by another runner: target <= 6), kills, postgres_restarts.
Bounded: BURSTS bursts, KILL_EVERY_S between kills, DRAIN_S to finish; every process it starts is ended.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.postgres_server import start_server  # noqa: E402  (the tests' throwaway cluster)

from depmirror.store import EventFilter, open_store  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ha_soak.json"
RUNNERS = 3
DEPENDENCIES = 50
BURSTS = 20
ALERTS_PER_BURST = 100  # two per dependency: 2,000 in all
POSTS_PER_BURST = 4
BURST_GAP_S = 3.0
KILL_EVERY_S = 6.0
RESTART_AFTER_S = 4.0  # longer than the lease, so another runner takes over
LEASE_S = 2.0
DRAIN_S = 240.0
TOKEN = "ha-soak-token-0123456789abcdef"
PLAYBOOK = """
- name: Stand in for rollback.yml that says when it ran
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write the start, work a little, write the end
      ansible.builtin.shell: >-
        echo "start {{ depmirror_dependency }} {{ depmirror_action_id }} $(date +%s.%N)" >> $SOAK_DIR/ran;
        sleep 0.3;
        echo "end {{ depmirror_dependency }} {{ depmirror_action_id }} $(date +%s.%N)" >> $SOAK_DIR/ran
      changed_when: true
    - name: Publish the new primary
      ansible.builtin.set_stats:
        data:
          depmirror_target: "{{ depmirror_dependency }}-b"
"""


class Runner:
    def __init__(self, index: int, work: Path, store: str) -> None:
        self.runner_id = f"runner-{index}"
        self.port = _free_port()
        self.config = work / f"{self.runner_id}.yml"
        self.log = work / f"{self.runner_id}.log"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "listen": {"host": "127.0.0.1", "port": self.port},
                    "auth": {"type": "bearer", "token_env": "SOAK_TOKEN"},
                    "store": store,
                    "runner_id": self.runner_id,
                    "mode": "act",
                    "dependencies": {f"dep{d:02d}": [f"dep{d:02d}-a", f"dep{d:02d}-b"] for d in range(DEPENDENCIES)},
                    "action": {
                        "playbook": str(work / "rollback.yml"),
                        "work_dir": str(work / f"{self.runner_id}-work"),
                        "envvars": {"SOAK_DIR": str(work)},
                        "timeout_seconds": 60,
                    },
                    "policy": {
                        "cooldown_seconds": 0,
                        "flap_max_transitions": 100000,
                        "on_unknown_health": "delegate",
                        "lease_seconds": LEASE_S,
                        "max_concurrent_actions": 2,
                    },
                }
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "SOAK_TOKEN": TOKEN}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "depmirror.cli",
                    "serve",
                    "--config",
                    str(self.config),
                    "--log-level",
                    "WARNING",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # The runner process; its playbooks run in sessions of their own and go on as orphans.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(port: int, body: bytes) -> tuple[int, float]:
    began = time.perf_counter()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("POST", "/alertmanager", body=body, headers={"Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        response.read()
        return response.status, (time.perf_counter() - began) * 1000
    except OSError:
        return 0, (time.perf_counter() - began) * 1000


def _burst(number: int) -> list[bytes]:
    """One burst as POSTS_PER_BURST notifications (Alertmanager sends a group per notification)."""
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": f"Soak{number}x{k}", "dependency": f"dep{d:02d}", "instance": f"dep{d:02d}-a"},
            "annotations": {},
            "startsAt": f"2026-11-29T00:{number:02d}:0{k}Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": f"b{number:02d}k{k}d{d:02d}",
        }
        for d in range(DEPENDENCIES)
        for k in range(ALERTS_PER_BURST // DEPENDENCIES)
    ]
    size = len(alerts) // POSTS_PER_BURST
    return [
        json.dumps(
            {
                "version": "4",
                "groupKey": f"soak{number}-{part}",
                "status": "firing",
                "receiver": "soak",
                "groupLabels": {},
                "commonLabels": {},
                "commonAnnotations": {},
                "externalURL": "",
                "alerts": alerts[part * size : (part + 1) * size],
            }
        ).encode()
        for part in range(POSTS_PER_BURST)
    ]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _overlaps(intervals: dict[str, list[tuple[float, float]]]) -> int:
    count = 0
    for spans in intervals.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            count += start < end
    return count


def main() -> int:
    random.seed(7)
    work = Path(tempfile.mkdtemp(prefix="ha-soak-"))
    (work / "rollback.yml").write_text(PLAYBOOK)
    server = start_server()
    store = server.url(server.create_database())
    runners = [Runner(i, work, store) for i in range(1, RUNNERS + 1)]
    kills: list[tuple[str, float]] = []
    acks: list[float] = []
    statuses: dict[int, int] = {}
    pg_restarts = 0
    stop = threading.Event()

    def killer() -> None:
        while not stop.wait(KILL_EVERY_S):
            victim = random.choice([r for r in runners if r.alive()] or runners)
            victim.kill()
            kills.append((victim.runner_id, time.time()))
            if stop.wait(RESTART_AFTER_S):
                return
            victim.start()

    try:
        for runner in runners:
            runner.start()
        time.sleep(3.0)
        chaos = threading.Thread(target=killer, daemon=True)
        chaos.start()
        for number in range(BURSTS):
            bodies = _burst(number)
            if number == BURSTS // 2:
                server.halt()
                time.sleep(1.0)
                server.resume()
                pg_restarts += 1
            for body in bodies:
                for _attempt in range(20):  # as Alertmanager: retry another runner until one answers 202
                    runner = random.choice([r for r in runners if r.alive()] or runners)
                    status, took = _post(runner.port, body)
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 202:
                        acks.append(took)
                        break
                    time.sleep(0.5)
            time.sleep(BURST_GAP_S)
        stop.set()
        chaos.join(timeout=RESTART_AFTER_S + 5)
        for runner in runners:
            if not runner.alive():
                runner.start()
        deadline = time.monotonic() + DRAIN_S
        with open_store(store) as opened:
            while time.monotonic() < deadline:
                stats = opened.stats()
                if not stats["alerts_waiting"] and not stats["open_actions"]:
                    break
                time.sleep(1.0)
            result = _measure(opened, store, work, kills, acks, statuses, pg_restarts)
    finally:
        stop.set()
        for runner in runners:
            runner.stop()
        server.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = (
        result["alerts_lost"] == 0
        and result["overlapping_actions"] == 0
        and result["ack_p99_ms"] <= 50
        and result["takeover_p99_s"] <= 6
    )
    return 0 if ok else 1


def _measure(
    store: Any,
    url: str,
    work: Path,
    kills: list[tuple[str, float]],
    acks: list[float],
    statuses: dict[int, int],
    pg_restarts: int,
) -> dict[str, Any]:
    events = store.events(EventFilter(limit=None))
    # The journal and the queue straight from PostgreSQL: the Store interface has no "every action" read.
    with psycopg.connect(url) as connection:
        accepted = {row[0] for row in connection.execute("SELECT fingerprint FROM alert_queue")}
        journal: dict[str, list[tuple[float, float]]] = {}
        for dependency, started, finished in connection.execute(
            "SELECT dependency, started_ts, coalesce(finished_ts, started_ts) FROM actions"
        ):
            journal.setdefault(dependency, []).append((started.timestamp(), finished.timestamp()))
    seen: set[str] = set()
    for event in events:
        seen.update(event.trigger.get("fingerprints") or [])
        if event.trigger.get("fingerprint"):
            seen.add(str(event.trigger["fingerprint"]))
    sent = {
        f"b{n:02d}k{k}d{d:02d}"
        for n in range(BURSTS)
        for k in range(ALERTS_PER_BURST // DEPENDENCIES)
        for d in range(DEPENDENCIES)
    }
    ran: dict[str, dict[str, list[float]]] = {}
    for line in (work / "ran").read_text().splitlines() if (work / "ran").exists() else []:
        _what, dependency, action_id, when = line.split()
        ran.setdefault(dependency, {}).setdefault(action_id, []).append(float(when))
    playbook_spans = {dep: [(min(times), max(times)) for times in runs.values()] for dep, runs in ran.items()}
    takeovers = []
    for event in events:
        if event.kind == "interrupted" and event.details.get("taken_over_by"):
            killed = [t for runner_id, t in kills if t <= event.time.timestamp() and runner_id in event.reason]
            if killed:
                takeovers.append(event.time.timestamp() - max(killed))
    return {
        "runners": RUNNERS,
        "dependencies": DEPENDENCIES,
        "alerts_sent": len(sent),
        "alerts_accepted": len(accepted),
        "alerts_lost": len(accepted - seen),
        "alerts_never_accepted": len(sent - accepted),
        "actions": sum(len(spans) for spans in journal.values()),
        "overlapping_actions": _overlaps(journal),
        "playbook_runs": sum(len(spans) for spans in playbook_spans.values()),
        "playbook_overlaps": _overlaps(playbook_spans),
        "ack_p50_ms": round(_percentile(acks, 0.5), 2),
        "ack_p99_ms": round(_percentile(acks, 0.99), 2),
        "http_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "kills": len(kills),
        "takeovers": len(takeovers),
        "takeover_p50_s": round(_percentile(takeovers, 0.5), 2),
        "takeover_p99_s": round(_percentile(takeovers, 0.99), 2),
        "postgres_restarts": pg_restarts,
        "interrupted_events": sum(1 for e in events if e.kind == "interrupted"),
        "events_by_kind": {k: sum(1 for e in events if e.kind == k) for k in sorted({e.kind for e in events})},
    }


if __name__ == "__main__":
    sys.exit(main())
