"""rollback.yml on the lab: the example fleet deployed by adjust.yml, health from a real Prometheus.

Issue 9's must-shows: an HTTP primary killed and replaced from another zone; a Redis primary killed under
a `WAIT 1` write load with every acknowledged write readable afterwards; a refusal that leaves nginx alone.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import depmirror_lab as lab
import pytest
import yaml
from tests.fakes.hostile import PAYLOADS, Canaries, fits_fingerprint
from tests.integration.ansible_run import ROOT
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

from depmirror.runner.actions import ActionRequest
from depmirror.runner.ansible_action import AnsibleRunnerAction
from depmirror.runner.config import ActionConfig

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]
WALL_TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def world(lab_up: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    why = environment_has_lab()
    if why:
        pytest.skip(why)
    need(PROMETHEUS, BLACKBOX)
    with fleet(tmp_path_factory.mktemp("rollback-lab"), lab_up) as built:
        yield built
    print(f"\nrollback.yml wall times: {WALL_TIMES}")


def _zone(world: Fleet, host: str) -> str:
    return world.graph.vms[host].zone


def test_no_healthy_mirror_refuses_records_and_leaves_nginx_alone(world: Fleet) -> None:
    item = next(d for d in sorted(world_items(world), key=lambda d: d["name"]) if len(d["instances"]) == 2)
    name, primary = item["name"], item["primary"]["host"]
    (mirror,) = [i["host"] for i in item["instances"] if i["host"] != primary]
    stopped = world.ssh(mirror, f"systemctl stop depmirror-{name}.service")
    assert stopped.returncode == 0, stopped.stderr
    try:
        world.wait_health(name, mirror, "failing")
        before = nginx_files(world)
        done, seconds = world.run(
            "rollback.yml",
            depmirror_dependency=name,
            depmirror_failed_instance=f"{name}@{primary}",
            depmirror_trigger={"type": "test", "name": "refusal"},
        )
        WALL_TIMES["refused"] = round(seconds, 2)
        assert done.rc != 0
        assert "refused: no healthy instance" in done.messages() and mirror in done.messages()
        assert nginx_files(world) == before, "a refused rollback changed nginx's files"
        (refused,) = world.events(name, "refused")
        assert refused.outcome == "refused" and refused.action == "rollback" and refused.instance == primary
        assert f"{mirror}: unhealthy" in refused.reason
        assert refused.inputs["health"][mirror]["verdict"] == "failing"
        assert world.events(name, "rollback") == []
        assert world.primary(name) == primary
    finally:
        world.ssh(mirror, f"systemctl start depmirror-{name}.service")


def test_a_switchover_nginx_rejects_is_recorded_as_failed_and_changes_nothing(world: Fleet) -> None:
    name = "payments-api"
    primary = world.applied(name)["primary"]["host"]
    before = nginx_files(world)
    done, _seconds = world.run(
        "rollback.yml",
        depmirror_dependency=name,
        depmirror_failed_instance=primary,
        depmirror_trigger={"type": "test", "name": "bad-nginx"},
        nginx_upstream_location_directives=["bogus_directive on"],
    )
    assert done.rc != 0
    assert "failed in its route phase on lb1 (recorded as a failed event): nginx -t rejected" in done.messages()
    assert nginx_files(world) == before, "a release nginx -t rejected reached the live configuration"
    (failed,) = world.events(name, "rollback")
    assert failed.outcome == "failed" and failed.instance == primary and failed.target not in (None, primary)
    assert failed.details["phase"] == "route" and failed.details["host"] == "lb1"
    assert 'unknown directive "bogus_directive"' in failed.reason
    assert failed.trigger == {"type": "test", "name": "bad-nginx"}
    assert world.primary(name) == primary, "a failed switchover moved the primary in the store"


def test_http_primary_killed_rolls_over_to_another_zone_then_fails_back(world: Fleet) -> None:
    """One test, not two: the failback needs this switchover first, and xdist keeps no order within a group."""
    _http_primary_killed_rolls_over_to_another_zone_and_the_lb_serves_from_it(world)
    _http_failback_rejoins_as_mirror_then_takes_the_primary_role_back(world)


def _http_primary_killed_rolls_over_to_another_zone_and_the_lb_serves_from_it(world: Fleet) -> None:
    name = "catalog-api"
    item = world.applied(name)
    failed = item["primary"]["host"]
    port = item["port"]
    lab.fault(world.paths, "stop", failed)
    try:
        done, seconds = world.run(
            "rollback.yml",
            depmirror_dependency=name,
            depmirror_failed_instance=f"{name}@{failed}",
            depmirror_trigger={"type": "test", "fingerprint": "http-kill"},
        )
        WALL_TIMES["http"] = round(seconds, 2)
        assert done.rc == 0, done.messages() or done.stderr[-3000:]
        target = world.primary(name)
        assert target is not None and target != failed
        assert _zone(world, target) != _zone(world, failed)
        survivors = {i["host"] for i in item["instances"]} - {failed}
        served = set()
        for _ in range(20):
            with urllib.request.urlopen(f"http://{lb_address(world.graph)}:{port}/", timeout=2) as response:
                answered_port, host = response.read().decode().split()
            assert answered_port == str(port)
            served.add(host)
        assert target in served and served <= survivors, served
        upstreams = world.ssh("lb1", "cat /etc/nginx/nginx.conf | grep -o 'releases/[0-9a-f]*' | head -1")
        rendered = world.ssh("lb1", f"cat /etc/nginx/depmirror/{upstreams.stdout.strip()}/http.conf").stdout
        block = rendered.split(f"# {name}:")[1].split("}")[0]
        assert f"{target} primary" in block and failed not in block
        (event,) = world.events(name, "rollback")
        assert event.outcome == "succeeded" and event.instance == failed and event.target == target
        assert "another zone" in event.reason and f"takes over from {failed}" in event.reason
        assert event.trigger == {"type": "test", "fingerprint": "http-kill"}
        assert event.inputs["health"][target]["verdict"] == "healthy"
        assert event.duration_s is not None and event.duration_s > 0
        fenced = next(t for t in done.tasks() if "Stop and disable" in t["task"]["name"])
        assert fenced["hosts"][failed].get("unreachable") or fenced["hosts"][failed].get("failed")
    finally:
        lab.restore(world.paths, failed)


def _routed_block(world: Fleet, name: str, block: str = "http.conf") -> str:
    release = world.ssh("lb1", "grep -o 'releases/[0-9a-f]*' /etc/nginx/nginx.conf | head -1").stdout.strip()
    rendered = world.ssh("lb1", f"cat /etc/nginx/depmirror/{release}/{block}").stdout
    return rendered.split(f"# {name}:")[1].split("}")[0]


def _failback(world: Fleet, name: str, host: str, **extra: Any) -> Any:
    done, seconds = world.run(
        "failback.yml",
        depmirror_dependency=name,
        depmirror_recovered_instance=f"{name}@{host}",
        depmirror_trigger={"type": "test", "name": "failback"},
        **extra,
    )
    assert done.rc == 0, done.messages() or done.stderr[-3000:]
    return seconds


def _http_failback_rejoins_as_mirror_then_takes_the_primary_role_back(world: Fleet) -> None:
    name = "catalog-api"
    (rolled,) = world.events(name, "rollback")  # the switchover just before
    failed, target = rolled.instance, rolled.target
    assert failed is not None and target is not None
    world.wait_health(name, failed, "healthy", timeout=60)  # the host was restored; its unit starts at boot

    held, _seconds = world.run("failback.yml", depmirror_dependency=name, depmirror_recovered_instance=failed)
    assert held.rc != 0 and "the hold time is 300 s" in held.messages()
    (refused,) = [e for e in world.events(name, "refused") if e.action == "failback"]
    assert refused.instance == failed

    WALL_TIMES["http-failback"] = round(_failback(world, name, failed, rollback_failback_hold_seconds=0), 2)
    assert world.primary(name) == target
    block = _routed_block(world, name)
    assert f"{target} primary" in block and f"{failed} mirror" in block
    (mirror,) = world.events(name, "failback")
    assert mirror.outcome == "succeeded" and mirror.action == "failback-mirror"
    assert mirror.instance == failed and mirror.target == target
    assert mirror.inputs["health"][failed]["verdict"] == "healthy"

    _failback(world, name, failed, rollback_failback_hold_seconds=0, depmirror_move_primary_back=True)
    assert world.primary(name) == failed
    assert f"{failed} primary" in _routed_block(world, name)
    back = world.events(name, "failback")[0]
    assert back.action == "failback-primary" and back.target == failed
    served = set()
    for _ in range(12):
        with urllib.request.urlopen(
            f"http://{lb_address(world.graph)}:{world.applied(name)['port']}/", timeout=2
        ) as response:
            served.add(response.read().decode().split()[1])
    assert failed in served, served


def test_redis_primary_killed_under_wait_1_load_keeps_every_write_then_fails_back(world: Fleet) -> None:
    """One test, not two: the failback needs this switchover first, and xdist keeps no order within a group."""
    _redis_primary_killed_under_wait_1_load_keeps_every_acknowledged_write(world)
    _redis_failback_resyncs_the_old_primary_then_hands_the_role_back_without_losing_writes(world)


def _redis_primary_killed_under_wait_1_load_keeps_every_acknowledged_write(world: Fleet) -> None:
    name = "session-cache"
    item = world.applied(name)
    failed = item["primary"]["host"]
    port = item["port"]
    address = lb_address(world.graph)
    acked: list[int] = []
    stop = threading.Event()
    errors: list[str] = []

    def write() -> None:
        client: Resp | None = None
        for i in range(20000):
            if stop.is_set():
                break
            try:
                client = client or Resp(address, port, timeout=1.0)
                client.call("SET", f"load:{i}", str(i))
                if int(client.call("WAIT", "1", "500")) >= 1:
                    acked.append(i)
            except (OSError, ValueError) as error:
                errors.append(str(error))
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
        before_kill = len(acked)
        killed = world.ssh(
            failed, f"systemctl kill --signal=SIGKILL depmirror-{name}.service; systemctl stop depmirror-{name}.service"
        )
        assert killed.returncode == 0, killed.stderr
        time.sleep(0.5)
    finally:
        stop.set()
        writer.join(timeout=10)
    assert before_kill >= 20, f"the load acknowledged only {before_kill} writes before the kill"
    done, seconds = world.run(
        "rollback.yml",
        depmirror_dependency=name,
        depmirror_failed_instance=f"{name}@{failed}",
        depmirror_trigger={"type": "test", "fingerprint": "redis-kill"},
    )
    WALL_TIMES["redis"] = round(seconds, 2)
    assert done.rc == 0, done.messages() or done.stderr[-3000:]
    target = world.primary(name)
    assert target is not None and target != failed
    reader = Resp(address, port)
    try:
        role = reader.call("ROLE")
        assert role[0] == "master"
        missing = [i for i in acked if reader.call("GET", f"load:{i}") != str(i)]
    finally:
        reader.close()
    assert missing == [], f"{len(missing)} of {len(acked)} acknowledged writes are gone"
    print(f"\nredis: {len(acked)} acknowledged writes, all readable from {target}; {len(errors)} client errors")
    replicas = [i["host"] for i in item["instances"] if i["host"] not in (failed, target)]
    for replica in replicas:
        info = world.ssh(replica, f"redis-cli -p {port} info replication").stdout
        target_address = world.graph.vms[target].address
        assert f"master_host:{target_address}" in info, info
    config = world.ssh(target, f"cat /etc/depmirror/{name}.redis.conf").stdout
    assert "replicaof" not in config.lower(), "CONFIG REWRITE did not drop replicaof: a restart would demote it"
    (event,) = world.events(name, "rollback")
    assert event.outcome == "succeeded" and event.target == target
    assert set(event.inputs["replication_offsets"]) >= {target}


def _redis_failback_resyncs_the_old_primary_then_hands_the_role_back_without_losing_writes(world: Fleet) -> None:
    name = "session-cache"
    (rolled,) = world.events(name, "rollback")
    failed, target = rolled.instance, rolled.target
    assert failed is not None and target is not None
    port = world.applied(name)["port"]
    address = lb_address(world.graph)
    writer = Resp(address, port)
    try:
        for i in range(50):
            writer.call("SET", f"failback:{i}", str(i))
        assert int(writer.call("WAIT", "1", "2000")) >= 1
    finally:
        writer.close()
    # The fence stopped and disabled it; a person brings the repaired instance back, out of every upstream.
    started = world.ssh(failed, f"systemctl start depmirror-{name}.service")
    assert started.returncode == 0, started.stderr
    world.wait_health(name, failed, "healthy")

    WALL_TIMES["redis-failback"] = round(_failback(world, name, failed, rollback_failback_hold_seconds=0), 2)
    info = world.ssh(failed, f"redis-cli -p {port} info replication").stdout
    assert f"master_host:{world.graph.vms[target].address}" in info and "master_link_status:up" in info, info
    assert world.primary(name) == target
    assert (
        f"replicaof {world.graph.vms[target].address} {port}"
        in world.ssh(failed, f"cat /etc/depmirror/{name}.redis.conf").stdout.lower()
    )

    # The resync restarted it as a replica; the hand-back needs it healthy again, as a person would wait.
    world.wait_health(name, failed, "healthy")
    _failback(world, name, failed, rollback_failback_hold_seconds=0, depmirror_move_primary_back=True)
    assert world.primary(name) == failed
    reader = Resp(address, port)
    try:
        assert reader.call("ROLE")[0] == "master"
        missing = [i for i in range(50) if reader.call("GET", f"failback:{i}") != str(i)]
    finally:
        reader.close()
    assert missing == [], f"{len(missing)} of 50 acknowledged writes are gone after the primary role moved back"
    old_target = world.ssh(target, f"redis-cli -p {port} info replication").stdout
    assert f"master_host:{world.graph.vms[failed].address}" in old_target, old_target
    actions = [e.action for e in world.events(name, "failback")]
    assert actions == ["failback-primary", "failback-mirror"]


def world_items(world: Fleet) -> list[dict[str, Any]]:
    from depmirror.store import open_store

    with open_store(world.store) as store:
        return list((store.applied_plan() or {})["plan"]["dependencies"])


def test_hostile_alert_text_reaches_the_real_rollback_playbook_only_as_data(world: Fleet, tmp_path: Path) -> None:
    """The runner's own ansible-runner action, in act mode, runs rollback.yml with Jinja, lookups and shell
    metacharacters in every trigger field: the switchover happens, no payload runs, the history keeps the
    text as it came."""
    name = "ledger"
    failed = world.applied(name)["primary"]["host"]
    (tmp_path / "canaries").mkdir()
    canaries = Canaries(tmp_path / "canaries")
    texts = [payload.text(canaries, "lab") for payload in PAYLOADS]
    trigger = {
        "type": "alert",
        "alertname": texts[0],
        "fingerprint": next(text for text in texts if fits_fingerprint(text)),
        "starts_at": texts[2],
        "generatorURL": texts[3],
        "labels": {f"label{i}": text for i, text in enumerate(texts)},
        # Keys stay the runner's own (the extra vars writer refuses template marks in a key); the text is in values.
        "annotations": {"summary": texts[4], "description": texts[5], "runbook_url": texts[6]},
    }
    variables = tmp_path / "vars.yml"
    variables.write_text(
        yaml.safe_dump(
            {"all": {"vars": {"depmirror_prometheus_url": world.prometheus_url, "rollback_health_interval": INTERVAL}}}
        )
    )
    action = AnsibleRunnerAction(
        ActionConfig(
            playbook=ROOT / "playbooks" / "rollback.yml",
            inventory=(*world.inventories, variables),
            work_dir=tmp_path / "runner-work",
            envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        )
    )
    request = ActionRequest(
        action_id=uuid.uuid4().hex,
        kind="rollback",
        dependency=name,
        instance=f"{name}@{failed}",
        trigger=trigger,
        store_url=world.store,
    )

    async def started(handle: str) -> None:
        assert handle.startswith("pid:")

    lab.fault(world.paths, "stop", failed)
    try:
        result = asyncio.run(action.run(request, started))
        output = (tmp_path / "runner-work" / request.action_id / "artifacts" / "run" / "stdout").read_text()
        assert result.outcome == "succeeded", result.detail + output[-3000:]
        assert canaries.found(deep=(tmp_path, ROOT), shallow=(Path("/tmp"),)) == []
        assert world.primary(name) not in (None, failed)
        (event,) = world.events(name, "rollback")
        assert event.outcome == "succeeded" and event.trigger == trigger
    finally:
        lab.restore(world.paths, failed)
