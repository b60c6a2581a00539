"""Upstreams under a zonal shift: an instance in a shifted zone takes no active-active traffic (it becomes
a backup) even when healthy, a shift never empties an upstream, and without a shift nothing changes."""

from __future__ import annotations

from typing import Any

from depmirror.views.upstreams import build_upstreams


def _dependency(mode: str = "active-active", primary_zone: str = "a") -> dict[str, Any]:
    other = "mirror" if mode == "active-active" else "standby"
    zones = ["a", "b", "c"]
    zones.remove(primary_zone)
    order = [primary_zone, *zones]
    return {
        "name": "payments-api",
        "kind": "http",
        "mode": mode,
        "port": 8082,
        "instances": [
            {
                "host": f"vm-{z}1",
                "zone": f"zone-{z}",
                "address": f"198.18.0.{n}",
                "port": 8082,
                "role": "primary" if z == primary_zone else other,
                "health": 1.0,
            }
            for z, n in zip(order, (11, 21, 31), strict=True)
        ],
    }


def _servers(**kw: Any) -> list[tuple[str, bool]]:
    dependency = kw.pop("dependency", _dependency())
    (upstream,) = build_upstreams([dependency], **kw)
    return [(s.host, s.backup) for s in upstream.servers]


def test_a_healthy_instance_in_a_shifted_zone_becomes_a_backup() -> None:
    moved = _dependency(primary_zone="b")  # the switchover put the primary in zone-b
    assert _servers(dependency=moved, shifted_zones=["zone-a"]) == [
        ("vm-b1", False),
        ("vm-a1", True),
        ("vm-c1", False),
    ]


def test_the_routing_mapping_may_carry_the_shifted_zones_and_never_passes_them_on() -> None:
    routing = {"shifted_zones": ["zone-c"], "max_fails": 5}
    (upstream,) = build_upstreams([_dependency()], routing)
    assert [(s.host, s.backup) for s in upstream.servers] == [("vm-a1", False), ("vm-b1", False), ("vm-c1", True)]
    assert "shifted_zones" not in upstream.routing and upstream.routing["max_fails"] == 5
    assert routing == {"shifted_zones": ["zone-c"], "max_fails": 5}  # the caller's mapping is left alone


def test_without_a_shift_the_upstream_is_identical() -> None:
    plain = build_upstreams([_dependency()])
    assert build_upstreams([_dependency()], shifted_zones=()) == plain
    assert build_upstreams([_dependency()], {"shifted_zones": []}) == plain
    assert build_upstreams([_dependency()], shifted_zones=["zone-nowhere"]) == plain


def test_a_shift_never_empties_an_upstream() -> None:
    # Active-passive with the primary still in the shifted zone: moving the writer is the switchover's job.
    assert _servers(dependency=_dependency("active-passive"), shifted_zones=["zone-a"]) == [
        ("vm-a1", False),
        ("vm-b1", True),
        ("vm-c1", True),
    ]
    # Every zone shifted (never allowed by the checks, but routing must not fail because of it).
    assert _servers(shifted_zones=["zone-a", "zone-b", "zone-c"]) == [
        ("vm-a1", False),
        ("vm-b1", False),
        ("vm-c1", False),
    ]
