from __future__ import annotations

import pytest

from depmirror.rollback.decide import RollbackRefused, choose_target, switched
from depmirror.views.upstreams import build_upstreams


def _item(healths: dict[str, float | None], mode: str = "active-passive") -> dict:
    zones = {"vm-a1": "zone-a", "vm-a2": "zone-a", "vm-b1": "zone-b", "vm-c1": "zone-c"}
    addresses = {"vm-a1": "198.18.0.11", "vm-a2": "198.18.0.12", "vm-b1": "198.18.0.21", "vm-c1": "198.18.0.31"}
    return {
        "name": "session-cache",
        "kind": "redis",
        "mode": mode,
        "port": 6380,
        "primary": {"host": "vm-a1", "address": "198.18.0.11", "port": 6380},
        "instances": [
            {
                "host": h,
                "zone": zones[h],
                "address": addresses[h],
                "port": 6380,
                "role": "primary" if h == "vm-a1" else "standby",
                "health": score,
            }
            for h, score in healths.items()
        ],
    }


def test_prefers_a_healthy_instance_in_another_zone_over_a_healthier_one_in_the_same_zone() -> None:
    decision = choose_target(_item({"vm-a1": 0.0, "vm-a2": 1.0, "vm-b1": 0.8}), "vm-a1")
    assert decision.target is not None and decision.target.host == "vm-b1"
    assert "another zone" in decision.reason


def test_among_other_zones_the_healthiest_wins() -> None:
    decision = choose_target(_item({"vm-a1": 0.0, "vm-b1": 0.7, "vm-c1": 0.95}), "vm-a1")
    assert decision.target is not None and decision.target.host == "vm-c1"


def test_falls_back_to_the_same_zone_when_nothing_else_is_healthy() -> None:
    decision = choose_target(_item({"vm-a1": 0.0, "vm-a2": 0.9, "vm-b1": 0.1}), "vm-a1")
    assert decision.target is not None and decision.target.host == "vm-a2"
    assert "same zone" in decision.reason


def test_unknown_health_is_never_a_target_and_the_refusal_says_why() -> None:
    with pytest.raises(RollbackRefused) as refused:
        choose_target(_item({"vm-a1": 0.0, "vm-b1": None, "vm-c1": 0.2}), "vm-a1")
    decision = refused.value.decision
    assert decision.target is None
    assert "vm-b1: health unknown" in decision.reason and "vm-c1: unhealthy" in decision.reason


def test_switched_makes_the_target_primary_and_fences_the_failed_instance() -> None:
    item = _item({"vm-a1": 0.0, "vm-b1": 0.9, "vm-c1": 0.9})
    decision = choose_target(item, "vm-a1")
    after = switched(item, decision)
    assert [(i["host"], i["role"]) for i in after["instances"]] == [("vm-b1", "primary"), ("vm-c1", "standby")]
    assert after["primary"]["host"] == "vm-b1"
    assert item["instances"][0]["role"] == "primary", "the input must not change"
    (upstream,) = build_upstreams([after])
    assert [(s.host, s.backup) for s in upstream.servers] == [("vm-b1", False), ("vm-c1", True)]
