from __future__ import annotations

import pytest

from depmirror.graph.model import VM, Graph, Policy, Zone
from depmirror.health.system import aggregate, mean_known, snapshot


def graph() -> Graph:
    return Graph.build(
        "test",
        [],
        [],
        [Zone("zone-a"), Zone("zone-b")],
        [
            VM("vm-a1", "127.0.0.1", "zone-a"),
            VM("vm-a2", "127.0.0.2", "zone-a"),
            VM("vm-b1", "127.0.0.3", "zone-b"),
        ],
        [],
        Policy(),
    )


def test_unknown_stays_unknown_and_is_not_averaged_in() -> None:
    assert mean_known([None, None]) is None
    assert mean_known([1.0, None, 0.0]) == 0.5


def test_vm_zone_and_overall_health_are_means_of_known_instance_scores() -> None:
    scores = {("api", "vm-a1"): 1.0, ("api", "vm-a2"): 0.0, ("cache", "vm-a2"): 1.0, ("api", "vm-b1"): None}
    vms, zones, overall = aggregate(graph(), scores)
    assert vms == {"vm-a1": 1.0, "vm-a2": 0.5, "vm-b1": None}
    assert zones["zone-a"] == pytest.approx(2 / 3)
    assert zones["zone-b"] is None
    assert overall == pytest.approx(2 / 3)


def test_the_snapshot_is_keyed_as_the_planner_reads_it() -> None:
    health = snapshot(graph(), {("api", "vm-a1"): 0.9})
    assert health.instance("api", "vm-a1") == 0.9
    assert health.to_dict()["zones"] == {"zone-a": 0.9, "zone-b": None}
