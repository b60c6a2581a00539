"""A batch of redis switchovers on real redis-server replicas and a real nginx (stream proxy) on loopback.

A zone holding the primaries of several redis dependencies goes down: the batch reads every survivor's
offset, promotes each dependency's most advanced survivor and repoints the other replica, routes them all
with one reload, and every write acknowledged by a replica before the fault is readable through the LB.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.integration.health_services import REDIS, Processes, need, processes, wait_until
from tests.local_nginx import Fleet, LocalLoadBalancer, loopback_fleet, options_for, serve_first_release

from depmirror.rollback.switchover import FastPath, FastPathConfig, Switch

ROOT = Path(__file__).resolve().parents[3]
DEAD = "zone-a"
WRITES = 50


def _client(address: str, port: int) -> redis.Redis:
    return redis.Redis(host=address, port=port, socket_timeout=2, socket_connect_timeout=2)


@pytest.fixture
def redis_zone(tmp_path: Path) -> Iterator[tuple[Fleet, FastPath, LocalLoadBalancer, Processes]]:
    need(REDIS)
    fleet = loopback_fleet(tmp_path / "fleet", 6, vms_per_zone=2, kind="redis")
    with processes(tmp_path) as procs:
        for item in fleet.plan:
            primary = item["primary"]
            for instance in item["instances"]:
                _start_redis(procs, f"{item['name']}-{instance['host']}", instance["address"], int(instance["port"]))
        for item in fleet.plan:
            primary = item["primary"]
            for instance in item["instances"]:
                client = _client(instance["address"], int(instance["port"]))
                wait_until(lambda c=client: _pings(c), 10, f"redis of {item['name']} on {instance['host']}")
                if instance["host"] != primary["host"]:
                    client.replicaof(primary["address"], int(primary["port"]))
        lb = LocalLoadBalancer(tmp_path / "lb")
        config = FastPathConfig(graph=fleet.graph_path, collection=ROOT, nginx=options_for(tmp_path / "lb"))
        fast = FastPath(config, transport=lb, health=fleet.health_without(DEAD))
        serve_first_release(fast, fleet, lb)
        try:
            yield fleet, fast, lb, procs
        finally:
            fast.close()
            lb.stop()


def _start_redis(procs: Processes, name: str, address: str, port: int) -> None:
    """redis-server from a config file, as the mirror role runs it: the promotion's CONFIG REWRITE needs one."""
    conf = procs.workdir / f"{name}.conf"
    conf.write_text(f'bind {address}\nport {port}\nsave ""\nappendonly no\ndir {procs.workdir}\n')
    procs.start(name, [REDIS, str(conf)])


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_a_zone_of_redis_primaries_is_promoted_in_one_batch_and_keeps_every_acknowledged_write(
    redis_zone: tuple[Fleet, FastPath, LocalLoadBalancer, Processes],
) -> None:
    fleet, fast, lb, procs = redis_zone
    down = fleet.primaries_in(DEAD)
    assert len(down) >= 2
    for item in down:
        primary = _client(item["primary"]["address"], int(item["port"]))
        for i in range(WRITES):
            primary.set(f"k{i}", item["name"])
        assert primary.wait(2, 5000) == 2  # both replicas acknowledged every write
    dead = {
        f"{item['name']}-{instance['host']}"
        for item in fleet.plan
        for instance in item["instances"]
        if instance["zone"] == DEAD
    }
    for process in procs.started:
        if process.name in dead:
            process.kill()

    result = fast.switch_batch([Switch(d["name"], d["primary"]["host"], fleet.store_url) for d in down])

    assert [o.status for o in result.outcomes] == ["succeeded"] * len(down), [str(o.error) for o in result.outcomes]
    assert lb.reloads() == 1
    for outcome in result.outcomes:
        assert outcome.event is not None
        item = next(d for d in down if d["name"] == outcome.dependency)
        target = next(i for i in item["instances"] if i["host"] == outcome.event["target"])
        other = next(i for i in item["instances"] if i["host"] not in (target["host"], item["primary"]["host"]))
        assert target["zone"] != DEAD and set(outcome.event["inputs"]["replication_offsets"]) == {
            target["host"],
            other["host"],
        }
        through_lb = _client(fleet.lb_address, int(item["port"]))
        assert through_lb.role()[0] == b"master"
        assert [through_lb.get(f"k{i}") for i in range(WRITES)] == [item["name"].encode()] * WRITES
        # The other survivor follows the new primary (so a second failure loses nothing either).
        replica = _client(other["address"], int(other["port"]))
        assert wait_until(lambda r=replica, at=target["address"]: _follows(r, at), 10, "the replica repointed")


def _follows(replica: redis.Redis, address: str) -> bool:
    info: dict[str, Any] = replica.info("replication")
    time.sleep(0.05)
    return info.get("master_host") == address
