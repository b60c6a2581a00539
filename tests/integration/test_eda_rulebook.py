"""Issue 18's EDA must-show on the lab: a real Alertmanager (Debian's) sends to the real ansible-rulebook
(from PyPI, on Debian's Java 17) running the collection's rulebook with its own event source, and
playbooks/rollback.yml switches the dependency over: exactly one rollback in the history, however many
alerts arrive. Hostile alert text sent through the same chain selects nothing and runs nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import depmirror_lab as lab
import pytest
import yaml
from tests.fakes.hostile import PAYLOADS, Canaries
from tests.fakes.webhook import free_port
from tests.integration.ansible_run import BIN, ROOT
from tests.integration.health_services import BLACKBOX, PROMETHEUS, need
from tests.integration.rollback_fleet import GRAPH, INTERVAL, Fleet, environment_has_lab, fleet

from depmirror.store import EventFilter, open_store

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
RULEBOOK = ROOT / "extensions" / "eda" / "rulebooks" / "rollback.yml"
TOKEN = "am-to-rulebook-token-0123456789"
DEPENDENCY = "catalog-api"
ACTED = ("rollback", "refused", "failed")
pytestmark = [
    pytest.mark.lab,
    pytest.mark.xdist_group("lab"),
    pytest.mark.skipif(not os.path.exists(ALERTMANAGER), reason="needs Debian's prometheus-alertmanager"),
    pytest.mark.skipif(not (BIN / "ansible-rulebook").exists(), reason="needs ansible-rulebook (bootstrap.sh)"),
    pytest.mark.skipif(shutil.which("java") is None, reason="needs Java 17 (openjdk-17-jre-headless)"),
]


@pytest.fixture(scope="module")
def world(lab_up: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    why = environment_has_lab()
    if why:
        pytest.skip(why)
    need(PROMETHEUS, BLACKBOX)
    with fleet(tmp_path_factory.mktemp("eda-lab"), lab_up) as built:
        yield built


def _wait_for(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    text = log.read_text(errors="replace") if log is not None and log.exists() else ""
    # What a reader needs first: the playbook's failure messages, then the end of the log.
    failures = "\n".join(line for line in text.splitlines() if "msg:" in line or "fatal:" in line)[-4000:]
    tail = f"{failures}\n...\n{text[-3000:]}"
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


def _status(url: str, body: Any = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


class Started:
    """Processes this test started, stopped by their own pid at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, **kwargs)
        self.procs.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.procs):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def start_rulebook(started: Started, world: Fleet, workdir: Path, port: int) -> Path:
    """ansible-rulebook as a user runs it: the collection's rulebook, an inventory directory (the lab's hosts,
    the graph inventory source, group_vars with Prometheus), vars for the source, the token in the environment."""
    inventory = workdir / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    for source in world.inventories:
        shutil.copy(source, inventory / source.name)
    group_vars = {"depmirror_prometheus_url": world.prometheus_url, "rollback_health_interval": INTERVAL}
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_vars))
    variables = {"depmirror_graph": str(GRAPH), "depmirror_state_store": world.store, "depmirror_eda_port": port}
    (workdir / "vars.yml").write_text(yaml.safe_dump(variables))
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "DEPMIRROR_EDA_TOKEN": TOKEN,
    }
    argv = [str(BIN / "ansible-rulebook"), "-r", str(RULEBOOK), "-i", str(inventory), "--vars", "vars.yml"]
    log = workdir / "rulebook.log"
    started.start([*argv, "-E", "DEPMIRROR_EDA_TOKEN", "-v"], log, env=env, cwd=workdir)
    _wait_for(lambda: _status(f"http://127.0.0.1:{port}/healthz") == 200, 60, "ansible-rulebook's source", log)
    return log


def start_alertmanager(started: Started, workdir: Path, rulebook_port: int) -> str:
    port = free_port()
    config = {
        "route": {
            "receiver": "eda",
            "group_by": ["dependency", "instance", "alertname"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "eda",
                "webhook_configs": [
                    {
                        "url": f"http://127.0.0.1:{rulebook_port}/alertmanager",
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}},
                    }
                ],
            }
        ],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    argv = [
        ALERTMANAGER,
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'am'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    log = workdir / "alertmanager.log"
    started.start(argv, log)
    url = f"http://127.0.0.1:{port}"
    _wait_for(lambda: _status(f"{url}/-/ready") == 200, 30, "Alertmanager", log)
    return url


def primary_down(instance: str, **extra: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": "DepmirrorPrimaryDown",
            "dependency": DEPENDENCY,
            "instance": instance,
            "action": "rollback",
            "severity": "critical",
            **extra,
        },
        "annotations": {"summary": f"Primary {instance} of {DEPENDENCY} is down"},
        "startsAt": datetime.now(UTC).isoformat(),
    }


def hostile_alerts(canaries: Canaries, failed_host: str) -> list[dict[str, Any]]:
    """Every payload in each label that selects something, and in the annotations and other labels of an
    alert whose dependency is itself hostile: none may select an instance or run anything."""
    alerts = []
    for payload in PAYLOADS:
        for field in ("dependency", "instance", "alertname", "action"):
            alert = primary_down(f"{DEPENDENCY}@{failed_host}")
            alert["labels"][field] = payload.text(canaries, field)
            if field == "action":  # a real instance with a hostile action: ignored, never a rollback
                alert["labels"]["instance"] = f"{DEPENDENCY}@{failed_host}"
            alert["annotations"] = {"summary": payload.text(canaries, "summary")}
            alert["generatorURL"] = "http://prometheus.invalid/graph"
            alerts.append(alert)
    return alerts


def test_alertmanager_to_rulebook_rolls_back_once_and_hostile_alerts_do_nothing(world: Fleet, tmp_path: Path) -> None:
    item = world.applied(DEPENDENCY)
    failed = item["primary"]["host"]
    canaries = Canaries(tmp_path)
    rulebook_port = free_port()
    started = Started()
    lab.fault(world.paths, "stop", failed)
    try:
        log = start_rulebook(started, world, tmp_path, rulebook_port)
        am = start_alertmanager(started, tmp_path, rulebook_port)
        # Hostile alerts first, on the same dependency: if any selected something, the rollback below would
        # be a second action (the throttle is per dependency) or a refusal in the history.
        assert _status(f"{am}/api/v2/alerts", hostile_alerts(canaries, failed)) == 200
        # The real alert, its twin from a second Prometheus (one more label) and the same again a moment
        # later: three notifications, one rollback.
        assert _status(f"{am}/api/v2/alerts", [primary_down(f"{DEPENDENCY}@{failed}")]) == 200
        assert _status(f"{am}/api/v2/alerts", [primary_down(f"{DEPENDENCY}@{failed}", replica="b")]) == 200

        def switched() -> bool:
            return any(e.outcome == "succeeded" for e in world.events(DEPENDENCY, "rollback"))

        _wait_for(switched, 180, "the rulebook's rollback to be recorded", log)
        assert _status(f"{am}/api/v2/alerts", [primary_down(f"{DEPENDENCY}@{failed}", replica="c")]) == 200
        # Bounded wait for anything a second action would record (the throttle holds for 5 minutes).
        time.sleep(10)
        (event,) = world.events(DEPENDENCY, *ACTED)
        assert event.kind == "rollback" and event.outcome == "succeeded" and event.instance == failed
        assert event.target != failed and world.primary(DEPENDENCY) == event.target
        trigger = dict(event.trigger)
        received = datetime.fromisoformat(trigger.pop("received_at"))
        assert abs((datetime.now(UTC) - received).total_seconds()) < 300
        assert re.fullmatch(r"[0-9a-f]{16}", trigger.pop("fingerprint"))  # Alertmanager's own, as text
        assert datetime.fromisoformat(trigger.pop("starts_at")).tzinfo is not None
        assert trigger == {
            "type": "alert",
            "source": "depmirror.mirroring.alertmanager",
            "alertname": "DepmirrorPrimaryDown",
        }
        # Nothing acted on any other dependency; the source said why it ignored the hostile alerts.
        with open_store(world.store) as store:
            acted = store.events(EventFilter(kinds=ACTED, limit=None))
        assert [(e.kind, e.dependency) for e in acted] == [("rollback", DEPENDENCY)]
        text = log.read_text(errors="replace")
        assert text.count("depmirror.mirroring.alertmanager: ignored") >= len(PAYLOADS) * 3
        assert canaries.found(deep=(tmp_path, world.workdir), shallow=(ROOT, Path("/tmp"), Path.home())) == []
    finally:
        started.stop()
        lab.restore(world.paths, failed)
