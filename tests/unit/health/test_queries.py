from __future__ import annotations

import pytest

from depmirror.graph.health_spec import HealthSpec
from depmirror.graph.model import VM, Dependency, DeploySpec
from depmirror.health.queries import (
    format_duration,
    probe_module,
    probe_target,
    queries_for,
)

VM_A1 = VM("vm-a1", "198.18.0.11", "zone-a")
API = Dependency("payments-api", tier=0, kind="http", port=8082, deploy=DeploySpec("run {port}", "/health"))
CACHE = Dependency("session-cache", tier=0, kind="redis", port=6380)


def test_http_instances_are_probed_over_http_on_their_vm_address_and_port() -> None:
    assert probe_module(API) == "http_2xx"
    assert probe_target(API, VM_A1) == "http://198.18.0.11:8082/health"


def test_redis_and_tcp_instances_are_probed_with_a_tcp_connect() -> None:
    assert probe_module(CACHE) == "tcp_connect"
    assert probe_target(CACHE, VM_A1) == "198.18.0.11:6380"


def test_default_queries_come_from_the_blackbox_probe() -> None:
    queries = queries_for(API)
    assert queries.up == 'probe_success{job="depmirror-blackbox", dependency="payments-api"}'
    assert queries.latency == 'probe_duration_seconds{job="depmirror-blackbox", dependency="payments-api"}'
    assert queries.error_ratio is None and queries.samples == 3
    assert set(queries.by_signal()) == {"up", "latency"}


def test_custom_queries_name_their_dependency() -> None:
    spec = HealthSpec(
        latency='histogram_quantile(0.99, sum by (host, le) (rate(s_bucket{service="$dependency"}[1m])))',
        error_ratio='sum by (host) (rate(errs{service="$dependency"}[1m])) / sum by (host) (rate(n[1m]))',
        samples=5,
    )
    queries = queries_for(API, spec)
    assert 'service="payments-api"' in (queries.latency or "")
    assert 'service="payments-api"' in (queries.error_ratio or "")
    assert queries.up.startswith("probe_success")
    assert queries.samples == 5


def test_a_spec_needs_at_least_one_sample() -> None:
    with pytest.raises(ValueError, match="samples"):
        HealthSpec(samples=0)


def test_durations_are_written_as_prometheus_reads_them() -> None:
    assert [format_duration(s) for s in (0, 0.5, 2, 10.0)] == ["0s", "500ms", "2s", "10s"]
