from __future__ import annotations

import pytest

from depmirror.views.upstreams import RoutingError, build_upstreams, server_weight, upstream_name


def _dependency(mode: str = "active-active", kind: str = "http", healths=(None, None, None)) -> dict:
    other = "mirror" if mode == "active-active" else "standby"
    roles = ["primary", other, other]
    return {
        "name": "payments-api",
        "kind": kind,
        "mode": mode,
        "port": 8082,
        "instances": [
            {"host": f"vm-{z}1", "address": f"198.18.0.{n}", "port": 8082, "role": role, "health": h}
            for z, n, role, h in zip("abc", (11, 21, 31), roles, healths, strict=True)
        ],
    }


def test_active_active_serves_every_instance_with_health_weights() -> None:
    (upstream,) = build_upstreams([_dependency(healths=(1.0, 0.6, None))])
    assert upstream.name == "depmirror_payments_api"
    assert upstream.block == "http"
    assert [(s.host, s.weight, s.backup) for s in upstream.servers] == [
        ("vm-a1", 10, False),
        ("vm-b1", 6, False),
        ("vm-c1", 10, False),  # unknown health keeps full weight: no data moves no traffic
    ]


def test_active_passive_marks_standbys_backup_and_lists_the_primary_first() -> None:
    (upstream,) = build_upstreams([_dependency(mode="active-passive", kind="redis")])
    assert upstream.block == "stream"
    assert [(s.role, s.backup) for s in upstream.servers] == [("primary", False), ("standby", True), ("standby", True)]


def test_failing_instances_are_left_out() -> None:
    (upstream,) = build_upstreams([_dependency(healths=(0.1, 0.9, 0.9))], unhealthy_below=0.5)
    assert [s.host for s in upstream.servers] == ["vm-b1", "vm-c1"]


def test_an_upstream_with_no_healthy_serving_instance_is_refused() -> None:
    with pytest.raises(RoutingError, match=r"payments-api.*no healthy serving instance.*vm-a1=0\.1"):
        build_upstreams([_dependency(healths=(0.1, 0.2, 0.0))])


def test_active_passive_with_a_failing_primary_is_refused_rather_than_left_to_backups() -> None:
    with pytest.raises(RoutingError, match="roll back"):
        build_upstreams([_dependency(mode="active-passive", healths=(0.0, 1.0, 1.0))])


def test_an_empty_upstream_is_refused() -> None:
    empty = {**_dependency(), "instances": []}
    with pytest.raises(RoutingError, match="empty upstream"):
        build_upstreams([empty])


def test_routing_policy_overrides_defaults_and_keeps_the_rest() -> None:
    (upstream,) = build_upstreams([_dependency()], routing={"max_fails": 1})
    assert upstream.routing["max_fails"] == 1
    assert upstream.routing["fail_timeout"] == "10s"


@pytest.mark.parametrize(("health", "weight"), [(None, 10), (1.0, 10), (0.5, 5), (0.01, 1), (0.0, 1)])
def test_server_weight(health: float | None, weight: int) -> None:
    assert server_weight(health) == weight


def test_upstream_names_are_nginx_identifiers() -> None:
    assert upstream_name("rate-limit.cache") == "depmirror_rate_limit_cache"
