"""Rollback and failback through `depmirror pyinfra` on the lab: the playbook path's traffic checks.

The world is rollback_fleet's (the example fleet deployed by adjust.yml, health from a real Prometheus);
only the frontend that switches differs from tests/integration/test_rollback_lab.py.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import depmirror_lab as lab
import pytest
import yaml
from tests.integration.health_services import BLACKBOX, PROMETHEUS, need
from tests.integration.rollback_fleet import (
    INTERVAL,
    Fleet,
    Resp,
    environment_has_lab,
    fleet,
    lb_address,
    nginx_files,
)
from tests.integration.test_pyinfra_lab import PyinfraRun, run_pyinfra

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]
GRAPH = Path(__file__).resolve().parents[2] / "inventories" / "example" / "graph.yml"


@pytest.fixture(scope="module")
def world(lab_up: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    why = environment_has_lab()
    if why:
        pytest.skip(why)
    need(PROMETHEUS, BLACKBOX)
    with fleet(tmp_path_factory.mktemp("pyinfra-rollback-lab"), lab_up) as built:
        yield built


def switch(world: Fleet, action: str, *extra: str) -> PyinfraRun:
    source = world.workdir / "pyinfra.depmirror.yml"
    fields = {
        "plugin": "depmirror.mirroring.graph",
        "graph": str(GRAPH),
        "state_store": world.store,
        "prometheus_url": world.prometheus_url,
    }
    source.write_text(yaml.safe_dump(fields))
    return run_pyinfra(world.paths, action, source, "--health-interval", str(INTERVAL), *extra, timeout=300)


def routed_block(world: Fleet, name: str, block: str = "http.conf") -> str:
    release = world.ssh("lb1", "grep -o 'releases/[0-9a-f]*' /etc/nginx/nginx.conf | head -1").stdout.strip()
    rendered = world.ssh("lb1", f"cat /etc/nginx/depmirror/{release}/{block}").stdout
    return rendered.split(f"# {name}:")[1].split("}")[0]


def served_by(world: Fleet, port: int, requests: int = 20) -> set[str]:
    served = set()
    for _ in range(requests):
        with urllib.request.urlopen(f"http://{lb_address(world.graph)}:{port}/", timeout=2) as response:
            answered_port, host = response.read().decode().split()
        assert answered_port == str(port)
        served.add(host)
    return served


def test_a_refused_pyinfra_rollback_is_recorded_and_leaves_nginx_alone(world: Fleet) -> None:
    name = "audit-log"
    item = world.applied(name)
    primary = item["primary"]["host"]
    mirrors = [i["host"] for i in item["instances"] if i["host"] != primary]
    for mirror in mirrors:
        assert world.ssh(mirror, f"systemctl stop depmirror-{name}.service").returncode == 0
    try:
        for mirror in mirrors:
            world.wait_health(name, mirror, "failing")
        before = nginx_files(world)
        done = switch(world, "rollback", "--dependency", name, "--failed-instance", f"{name}@{primary}")
        assert done.rc == 2 and "refused: no healthy instance" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert nginx_files(world) == before, "a refused rollback changed nginx's files"
        (refused,) = world.events(name, "refused")
        assert refused.action == "rollback" and refused.instance == primary
        assert world.primary(name) == primary
    finally:
        for mirror in mirrors:
            world.ssh(mirror, f"systemctl start depmirror-{name}.service")


def test_http_primary_killed_rolls_over_through_pyinfra_then_fails_back(world: Fleet) -> None:
    name = "catalog-api"
    item = world.applied(name)
    failed, port = item["primary"]["host"], item["port"]
    lab.fault(world.paths, "stop", failed)
    try:
        done = switch(
            world,
            "rollback",
            "--dependency",
            name,
            "--failed-instance",
            f"{name}@{failed}",
            "--trigger",
            '{"type": "test", "fingerprint": "pyinfra-http-kill"}',
        )
        assert done.rc == 0, done.stderr[-3000:]
        target = world.primary(name)
        assert target is not None and target != failed
        assert world.graph.vms[target].zone != world.graph.vms[failed].zone
        survivors = {i["host"] for i in item["instances"]} - {failed}
        served = served_by(world, port)
        assert target in served and served <= survivors, served
        block = routed_block(world, name)
        assert f"{target} primary" in block and failed not in block
        (event,) = world.events(name, "rollback")
        assert event.outcome == "succeeded" and event.instance == failed and event.target == target
        assert event.trigger == {"type": "test", "fingerprint": "pyinfra-http-kill"}
        assert event.details["frontend"] == "pyinfra"
        assert all(check["ok"] for check in event.details["traffic"])
        assert "not fenced on its host" in done.report["fence"], done.report["fence"]
    finally:
        lab.restore(world.paths, failed)

    world.wait_health(name, failed, "healthy", timeout=60)
    held = switch(world, "failback", "--dependency", name, "--recovered-instance", failed)
    assert held.rc == 2 and "the hold time is 300 s" in held.stderr, held.stderr
    back = switch(world, "failback", "--dependency", name, "--recovered-instance", failed, "--hold-seconds", "0")
    assert back.rc == 0, back.stderr[-3000:]
    assert world.primary(name) == target
    block = routed_block(world, name)
    assert f"{target} primary" in block and f"{failed} mirror" in block
    primary_back = switch(
        world,
        "failback",
        "--dependency",
        name,
        "--recovered-instance",
        failed,
        "--hold-seconds",
        "0",
        "--move-primary-back",
    )
    assert primary_back.rc == 0, primary_back.stderr[-3000:]
    assert world.primary(name) == failed
    assert failed in served_by(world, port, 12)
    assert [e.action for e in world.events(name, "failback")] == ["failback-primary", "failback-mirror"]


def test_redis_primary_killed_under_wait_1_load_keeps_every_write_through_pyinfra(world: Fleet) -> None:
    name = "session-cache"
    item = world.applied(name)
    failed, port = item["primary"]["host"], item["port"]
    address = lb_address(world.graph)
    acked: list[int] = []
    stop = threading.Event()

    def write() -> None:
        client: Resp | None = None
        for i in range(20000):
            if stop.is_set():
                break
            try:
                client = client or Resp(address, port, timeout=1.0)
                client.call("SET", f"pyinfra:{i}", str(i))
                if int(client.call("WAIT", "1", "500")) >= 1:
                    acked.append(i)
            except (OSError, ValueError):
                if client is not None:
                    client.close()
                client = None
                time.sleep(0.05)
        if client is not None:
            client.close()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        time.sleep(1.5)
        killed = world.ssh(
            failed, f"systemctl kill --signal=SIGKILL depmirror-{name}.service; systemctl stop depmirror-{name}.service"
        )
        assert killed.returncode == 0, killed.stderr
        time.sleep(0.5)
    finally:
        stop.set()
        writer.join(timeout=10)
    assert len(acked) >= 20, f"the load acknowledged only {len(acked)} writes before the kill"
    done = switch(world, "rollback", "--dependency", name, "--failed-instance", f"{name}@{failed}")
    assert done.rc == 0, done.stderr[-3000:]
    target = world.primary(name)
    assert target is not None and target != failed
    reader = Resp(address, port)
    try:
        assert reader.call("ROLE")[0] == "master"
        missing = [i for i in acked if reader.call("GET", f"pyinfra:{i}") != str(i)]
    finally:
        reader.close()
    assert missing == [], f"{len(missing)} of {len(acked)} acknowledged writes are gone"
    target_address = world.graph.vms[target].address
    for replica in [i["host"] for i in item["instances"] if i["host"] not in (failed, target)]:
        info = world.ssh(replica, f"redis-cli -p {port} info replication").stdout
        assert f"master_host:{target_address}" in info, info
    config = world.ssh(target, f"cat /etc/depmirror/{name}.redis.conf").stdout
    assert "replicaof" not in config.lower(), "CONFIG REWRITE did not drop replicaof: a restart would demote it"
    (event,) = world.events(name, "rollback")
    assert event.outcome == "succeeded" and set(event.inputs["replication_offsets"]) >= {target}
    # The fence reached the host (only the instance was killed): the failed unit is stopped and disabled.
    assert "stopped and disabled" in done.report["fence"], done.report["fence"]
    enabled = world.ssh(failed, f"systemctl is-enabled depmirror-{name}.service").stdout.strip()
    assert enabled == "disabled"
