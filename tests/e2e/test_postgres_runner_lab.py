"""The runner switches a PostgreSQL dependency by itself, through its fast path (issue 19), on the lab.

inventories/lab-postgres in synchronous mode (`policy.replication.data_loss: none`: a primary and two
streaming standbys, commits wait for one), watched as a fleet's would be: blackbox, Prometheus, Alertmanager
and `depmirror serve` in act mode with the fast path on (tests/e2e/postgres_runner.py). The primary is
SIGKILLed under an INSERT load through lb1 and nothing else is done. What a person checks then: one
rollback event, carried out by the fast path (not the playbook), a standby promoted and lb1 reaching it,
every acknowledged INSERT readable, the new primary taking writes, the other standby streaming from it, the
old primary fenced.
"""

from __future__ import annotations

from pathlib import Path

import depmirror_lab as lab
import pytest
from tests.e2e.postgres_runner import kill_under_load, summary, watched_postgres
from tests.integration.health_services import ALERTMANAGER, BLACKBOX, PROMETHEUS, need, wait_until
from tests.integration.postgres_fleet import DEPENDENCY, readable, served_by, streams_from, wait_switched
from tests.integration.rollback_fleet import environment_has_lab

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]


def test_the_runner_promotes_a_standby_through_its_fast_path_and_no_acknowledged_insert_is_lost(
    lab_up: lab.LabPaths, tmp_path: Path
) -> None:
    why = environment_has_lab()
    if why:
        pytest.skip(why)
    need(PROMETHEUS, BLACKBOX, ALERTMANAGER)
    with watched_postgres(lab_up, tmp_path, "none") as watched:
        world = watched.world
        item = world.applied(DEPENDENCY)
        assert item["synchronous"] is True
        run = kill_under_load(world)
        figures = summary(run)
        print(f"\npostgresql through the runner's fast path: {figures}")

        (event,) = run.events  # exactly one decision for the fault
        assert (event.kind, event.outcome) == ("rollback", "succeeded"), (event.kind, event.reason)
        assert event.details.get("path") == "fast", f"not the fast path: {event.details}"
        assert "fast_path_unavailable" not in event.details, event.details["fast_path_unavailable"]
        assert event.details.get("fenced_first") is True, "the old primary's host answers: it must be fenced first"
        target = event.target
        assert target not in (None, run.failed) and world.primary(DEPENDENCY) == target
        # The fast path's own inputs (the runner's event keeps its health re-check in `inputs`).
        offsets = {host: int(v) for host, v in event.details["decision_inputs"]["replication_offsets"].items()}
        assert set(offsets) == {i["host"] for i in item["instances"]} - {run.failed}
        assert offsets[target] == max(offsets.values()), "the lag gate (max lag 0) let a less advanced standby win"

        target_address = world.graph.vms[target].address
        wait_switched(run.address, run.port, target_address, timeout=10)
        acked = sorted(run.load.acked)
        assert len(acked) >= 20, f"only {len(acked)} INSERTs acknowledged: {run.load.errors[-3:]}"
        missing = sorted(set(acked) - readable(run.address, run.port, acked))
        assert missing == [], f"{len(missing)} of {len(acked)} acknowledged INSERTs are gone: {missing[:10]}"
        assert run.acked_after_kill(), f"the new primary acknowledged no INSERT: {run.load.errors[-3:]}"
        assert served_by(run.address, run.port) == (False, target_address)

        (other,) = [i["host"] for i in item["instances"] if i["host"] not in (run.failed, target)]
        wait_until(
            lambda: streams_from(world, other, run.port).startswith(f"{target_address}:streaming"),
            15,
            f"{other} to stream from the new primary {target}",
        )
        fenced = world.ssh(run.failed, f"systemctl is-enabled depmirror-{DEPENDENCY}.service")
        assert fenced.stdout.strip() == "disabled", "the old primary was not fenced (still enabled)"
