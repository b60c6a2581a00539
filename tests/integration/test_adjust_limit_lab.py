"""AWX's limit prompt on the lab: `adjust.yml --limit zone_zone_a` plans the whole fleet on the controller,
applies it on zone-a's hosts only, and the store records only what zone-a got (fleet/partial.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.integration.ansible_run import playbook
from tests.integration.test_adjust_lab import Fleet

from depmirror.fleet.applied import plan_of
from depmirror.store import open_store

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]
ZONE_A_VMS = {"vm-a1", "vm-a2"}


def _recorded(fleet: Fleet) -> dict[str, set[str]]:
    with open_store(str(fleet.store), create=False) as store:
        plan = plan_of(store.applied_plan())
    return {d["name"]: {i["host"] for i in d["instances"]} for d in plan["dependencies"]}


def test_a_zone_limited_adjust_applies_and_records_only_zone_a(lab_up: Any, tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, lab_up.inventory)
    wiped = playbook("tests/integration/playbooks/wipe.yml", [lab_up.inventory])
    assert wiped.rc == 0, wiped.stderr

    limited = fleet.adjust("--limit", "zone_zone_a")
    assert limited.rc == 0, limited.messages() or limited.stderr
    planned = fleet.plan()  # the whole fleet's plan from the store the limited run left
    whole = limited.task("Compute the replication plan from the graph, the state store and health")
    first_plan = next(iter(whole["hosts"].values()))["plan"]
    assert {i["host"] for d in first_plan["dependencies"] for i in d["instances"]} - ZONE_A_VMS, (
        "the limited run still planned the whole fleet"
    )

    recorded = _recorded(fleet)
    assert recorded, "zone-a's changes were recorded"
    assert set().union(*recorded.values()) <= ZONE_A_VMS, f"recorded outside zone-a: {recorded}"
    units = fleet.running_units()
    assert all(not units[h] for h in units if h not in ZONE_A_VMS), f"the limit was not honoured: {units}"
    for dependency, hosts in recorded.items():
        assert all(dependency in units[h] for h in hosts), f"{dependency} recorded on {hosts} but not running"
    # What zone-a runs is kept by the next plan; the rest is still to provision.
    kept = {(d["name"], a["host"]) for d in planned.values() for a in d["actions"] if a["action"] == "keep"}
    assert kept == {(name, h) for name, hosts in recorded.items() for h in hosts}

    full = fleet.adjust()
    assert full.rc == 0, full.messages() or full.stderr
    after = _recorded(fleet)
    assert set().union(*after.values()) - ZONE_A_VMS, "the full run added the other zones"
    assert all(recorded[name] <= after[name] for name in recorded), "zone-a's instances stayed where they were"
