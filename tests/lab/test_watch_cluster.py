"""Two Alertmanagers in a cluster in the lab's watchers (issue 17), on loopback only, without the lab's hosts:
real Prometheus, blackbox exporter, two Alertmanagers gossiping with `--cluster.peer`, and `depmirror serve`.
An alert reaches the runner through either Alertmanager, and through both at once it is queued once."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from depmirror_lab import chain, daemons, watch
from depmirror_lab.paths import LabPaths

from depmirror.store import open_store

pytestmark = pytest.mark.skipif(
    not all(Path(binary).exists() for binary in watch.BINARIES.values()),
    reason="needs Debian's prometheus, alertmanager and blackbox exporter",
)
WAIT_S = 45.0  # the second Alertmanager of a cluster waits --cluster.peer-timeout (15 s) before it sends


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[watch.Watch]:
    """The watchers with two Alertmanagers for a one-instance fleet that answers on loopback (so Prometheus
    raises nothing by itself); their own lab state directory, so the real lab's watchers are left alone."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    graph = tmp_path / "graph.yml"
    graph.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "zones": {"zone-a": {}},
                "vms": {"vm-a1": {"address": "127.0.0.1", "zone": "zone-a", "capacity": 4}},
                "load_balancers": {"lb1": {"address": "127.0.0.2"}},  # never reached: no fast path here
                "dependencies": {
                    "api": {
                        "tier": 1,
                        "kind": "http",
                        "port": server.server_address[1],
                        "replication": {"min": 1, "max": 1},
                        "deploy": {"command": "true"},
                    }
                },
            }
        )
    )
    store = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(store) as opened:
        plan = {"name": "api", "mode": "active-passive", "instances": [{"host": "vm-a1", "role": "primary"}]}
        opened.set_applied_plan({"plan": {"dependencies": [plan]}})
    paths = LabPaths(tmp_path)
    try:
        yield watch.start(
            paths,
            watch.WatchSettings(
                graph=graph,
                store=store,
                inventories=(),
                collection=Path(__file__).resolve().parents[2],
                fast_path=False,
                alertmanagers=2,
            ),
        )
    finally:
        watch.stop(paths)
        server.shutdown()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=3) as response:
        return json.load(response)


def _post_alert(alertmanager_url: str, name: str) -> None:
    now = datetime.now(UTC)
    alert = {
        "labels": {
            "alertname": name,
            "dependency": "api",
            "instance": "api@vm-a1",
            "severity": "warning",
            "action": "notify",  # recorded and ignored by the runner: nothing acts in this test
        },
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }
    request = urllib.request.Request(
        f"{alertmanager_url}/api/v2/alerts",
        data=json.dumps([alert]).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=3) as response:
        assert response.status == 200


def _queued(watched: watch.Watch, name: str, since: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_S
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not found:
        found = [q for q in chain.queued_alerts(watched.store, "api", "vm-a1", since) if q["alertname"] == name]
        time.sleep(0.5)
    return found


def test_two_alertmanagers_form_a_cluster_and_either_one_reaches_the_runner_once(cluster: watch.Watch) -> None:
    assert len(cluster.alertmanager_urls) == 2
    deadline = time.monotonic() + 30
    peers: list[int] = []
    while time.monotonic() < deadline:
        statuses = [_get(f"{url}/api/v2/status")["cluster"] for url in cluster.alertmanager_urls]
        peers = [len(s.get("peers") or []) for s in statuses]
        if peers == [2, 2] and all(s["status"] == "ready" for s in statuses):
            break
        time.sleep(0.5)
    assert peers == [2, 2], statuses

    # The same alert sent to both (as Prometheus does): the runner queues it once.
    since = time.time() - 1
    for url in cluster.alertmanager_urls:
        _post_alert(url, "DepmirrorTestBoth")
    assert len(_queued(cluster, "DepmirrorTestBoth", since)) == 1
    time.sleep(20)  # past the second one's peer timeout: had it sent too, the row would be there by now
    assert len(_queued(cluster, "DepmirrorTestBoth", since)) == 1

    # The first Alertmanager dies: the second alone still delivers.
    assert daemons.stop(LabPaths(cluster.dir.parents[2]), "alertmanager")
    since = time.time() - 1
    _post_alert(cluster.alertmanager_urls[1], "DepmirrorTestSurvivor")
    assert len(_queued(cluster, "DepmirrorTestSurvivor", since)) == 1
