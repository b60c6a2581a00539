"""Alert storm: 10,000 alerts for 100 dependencies in 100 posts against a real `depmirror serve`.

Prints ack latency p50/p99 and the actions taken; writes bench/results/alert_storm.json.
The runner runs in shadow mode (decide and record, no playbook), so "actions" counts decisions to act.
Target: ack p99 <= 50 ms, exactly one action per dependency.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from depmirror.store import EventFilter, open_store

DEPENDENCIES = 100
POSTS = 100
TOKEN = "bench-token-0123456789"
RESULTS = Path(__file__).parent / "results" / "alert_storm.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _payload(post: int) -> bytes:
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": f"DependencyDown{post}",
                "dependency": f"dep{d:03d}",
                "instance": f"dep{d:03d}-a",
            },
            "annotations": {},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": f"{post:04d}{d:012x}",
        }
        for d in range(DEPENDENCIES)
    ]
    body = {
        "version": "4",
        "groupKey": f"storm{post}",
        "status": "firing",
        "receiver": "depmirror",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": alerts,
    }
    return json.dumps(body).encode()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--store",
        default="",
        help="store URL (default: a SQLite file in a temp dir); `postgresql` starts a throwaway cluster "
        "(Debian's postgresql-15, on loopback) for the run",
    )
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    if args.store == "postgresql":
        # The test suite's throwaway cluster (initdb as the postgres user, loopback, a free port).
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.postgres_server import start_server

        server = start_server()
        try:
            return _storm(server.url(server.create_database()), "postgresql")
        finally:
            server.stop()
    return _storm(args.store, "postgresql" if args.store.startswith("postgres") else "sqlite")


def _storm(store_url: str, backend: str) -> int:
    work = Path(tempfile.mkdtemp(prefix="alert-storm-"))
    store_url = store_url or f"sqlite:///{work / 'history.db'}"
    port = _free_port()
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "auth": {"type": "bearer", "token_env": "DEPMIRROR_RUNNER_TOKEN"},
        "store": store_url,
        "dependencies": {f"dep{d:03d}": [f"dep{d:03d}-a", f"dep{d:03d}-b"] for d in range(DEPENDENCIES)},
        "mode": "shadow",
        "policy": {"on_unknown_health": "delegate", "cooldown_seconds": 600},
    }
    (work / "runner.yml").write_text(yaml.safe_dump(config))
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "depmirror.cli",
            "serve",
            "--config",
            str(work / "runner.yml"),
            "--log-level",
            "WARNING",
        ],
        env={**os.environ, "DEPMIRROR_RUNNER_TOKEN": TOKEN},
    )
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + 20
        while True:
            try:
                connection.request("GET", "/readyz")
                if connection.getresponse().read() and time.monotonic() and True:
                    break
            except OSError:
                connection.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        payloads = [_payload(i) for i in range(POSTS)]
        acks: list[float] = []
        for body in payloads:
            began = time.perf_counter()
            connection.request(
                "POST",
                "/alertmanager",
                body=body,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            response.read()
            acks.append((time.perf_counter() - began) * 1000)
            assert response.status == 202, response.status
        store = open_store(store_url)
        deadline = time.monotonic() + 60
        while store.queue_depth() and time.monotonic() < deadline:
            time.sleep(0.1)
        events = store.events(EventFilter(kinds=("rollback",), limit=None))
        per_dependency = Counter(e.dependency for e in events)
        depth = store.queue_depth()
        store.close()
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)
    result = {
        "alerts": DEPENDENCIES * POSTS,
        "posts": POSTS,
        "dependencies": DEPENDENCIES,
        "ack_p50_ms": round(_percentile(acks, 0.5), 2),
        "ack_p99_ms": round(_percentile(acks, 0.99), 2),
        "ack_max_ms": round(max(acks), 2),
        "actions": len(events),
        "dependencies_with_exactly_one_action": sum(1 for n in per_dependency.values() if n == 1),
        "queue_depth_after": depth,
        "mode": "shadow",
        "store": backend,
    }
    results = RESULTS if backend == "sqlite" else RESULTS.with_name(f"alert_storm_{backend}.json")
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ack p50 {result['ack_p50_ms']} ms, p99 {result['ack_p99_ms']} ms (target <= 50 ms)")
    print(
        f"actions {result['actions']} for {DEPENDENCIES} dependencies "
        f"({result['dependencies_with_exactly_one_action']} with exactly one)"
    )
    ok = (
        result["ack_p99_ms"] <= 50
        and result["actions"] == DEPENDENCIES == result["dependencies_with_exactly_one_action"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
