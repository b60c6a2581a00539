"""rollback.yml for a PostgreSQL dependency on the lab: a primary and two streaming standbys, one per zone.

Issue 19's must-shows: the primary killed under a write load through the load balancer; a standby promoted,
the load balancer switched to it, the other standby streaming from it; in synchronous mode
(`policy.replication.data_loss: none`) every acknowledged INSERT readable afterwards; in asynchronous mode
nothing lost that the most advanced standby held (the lag gate's bound, docs/rollback.md "PostgreSQL").
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from tests.integration.health_services import BLACKBOX, PROMETHEUS, need
from tests.integration.postgres_fleet import (
    DEPENDENCY,
    WriteLoad,
    kill_primary,
    postgres_fleet,
    readable,
    served_by,
    streams_from,
    wait_switched,
)
from tests.integration.rollback_fleet import Fleet, environment_has_lab, lb_address

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]


def _switch_under_load(world: Fleet) -> dict[str, Any]:
    item = world.applied(DEPENDENCY)
    failed, port = item["primary"]["host"], int(item["port"])
    address = lb_address(world.graph)
    load = WriteLoad(address, port)
    load.prepare()
    load.start()
    try:
        time.sleep(2.0)
        before_kill = len(load.acked)
        kill_primary(world, failed)
        time.sleep(0.5)
    finally:
        load.stop()
    assert before_kill >= 20, f"the load acknowledged only {before_kill} INSERTs before the kill: {load.errors[-3:]}"
    done, seconds = world.run(
        "rollback.yml",
        depmirror_dependency=DEPENDENCY,
        depmirror_failed_instance=f"{DEPENDENCY}@{failed}",
        depmirror_trigger={"type": "test", "fingerprint": "postgres-kill"},
    )
    assert done.rc == 0, done.messages() or done.stderr[-3000:]
    target = world.primary(DEPENDENCY)
    assert target is not None and target != failed
    target_address = world.graph.vms[target].address
    wait_switched(address, port, target_address, timeout=10)
    (event,) = world.events(DEPENDENCY, "rollback")
    assert event.outcome == "succeeded" and event.target == target
    offsets = {host: int(offset) for host, offset in event.inputs["replication_offsets"].items()}
    others = [i["host"] for i in item["instances"] if i["host"] not in (failed, target)]
    return {
        "failed": failed,
        "target": target,
        "target_address": target_address,
        "others": others,
        "port": port,
        "address": address,
        "load": load,
        "offsets": offsets,
        "seconds": seconds,
    }


def _the_rest_follows_the_new_primary(world: Fleet, run: dict[str, Any]) -> None:
    recovery, server = served_by(run["address"], run["port"])
    assert (recovery, server) == (False, run["target_address"]), "the load balancer does not reach the new primary"
    for other in run["others"]:
        assert streams_from(world, other, run["port"]).startswith(run["target_address"] + ":streaming"), (
            f"{other} does not stream from the new primary"
        )
    fenced = world.ssh(run["failed"], f"systemctl is-enabled depmirror-{DEPENDENCY}.service")
    assert fenced.stdout.strip() == "disabled", "the old primary was not fenced (still enabled)"


def test_synchronous_primary_killed_under_load_loses_no_acknowledged_insert(lab_up: Any, tmp_path: Any) -> None:
    why = environment_has_lab()
    if why:
        pytest.skip(why)
    need(PROMETHEUS, BLACKBOX)
    with postgres_fleet(tmp_path, lab_up, "none") as world:
        sync = world.ssh(
            world.applied(DEPENDENCY)["primary"]["host"],
            "runuser -u postgres -- psql -X -A -t -h /var/run/postgresql -p 5544 -d postgres "
            "-c 'SHOW synchronous_standby_names'",
        )
        assert sync.stdout.strip() == "ANY 1 (*)", sync.stdout + sync.stderr
        run = _switch_under_load(world)
        acked = sorted(run["load"].acked)
        missing = sorted(set(acked) - readable(run["address"], run["port"], acked))
        assert missing == [], f"{len(missing)} of {len(acked)} acknowledged INSERTs are gone: {missing[:10]}"
        assert run["offsets"][run["target"]] == max(run["offsets"].values())
        _the_rest_follows_the_new_primary(world, run)
        print(
            f"\npostgresql sync: {len(acked)} acknowledged INSERTs, all readable from {run['target']}; "
            f"rollback.yml {run['seconds']:.1f} s; offsets {run['offsets']}"
        )


def test_asynchronous_loss_is_only_what_the_promoted_standby_never_received(lab_up: Any, tmp_path: Any) -> None:
    why = environment_has_lab()
    if why:
        pytest.skip(why)
    need(PROMETHEUS, BLACKBOX)
    with postgres_fleet(tmp_path, lab_up, "bounded") as world:
        run = _switch_under_load(world)
        held = run["offsets"][run["target"]]
        assert held == max(run["offsets"].values()), "the lag gate (max lag 0) let a less advanced standby win"
        load: WriteLoad = run["load"]
        acked = sorted(load.acked)
        present = readable(run["address"], run["port"], acked)
        # A commit the standby held (its WAL position at or before what the standby had) must be there.
        must_have = [i for i in acked if load.acked[i] <= held]
        missing = sorted(set(must_have) - present)
        assert missing == [], f"{len(missing)} INSERTs the promoted standby held are gone: {missing[:10]}"
        lost = sorted(set(acked) - present)
        assert all(load.acked[i] > held for i in lost)
        _the_rest_follows_the_new_primary(world, run)
        print(
            f"\npostgresql async: {len(acked)} acknowledged, {len(lost)} lost (all past the {held} bytes the "
            f"promoted standby held); rollback.yml {run['seconds']:.1f} s"
        )
