"""Health verdicts from a real Prometheus and blackbox exporter probing real HTTP and Redis instances."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tests.integration.health_services import (
    BLACKBOX,
    PROMETHEUS,
    REDIS,
    Process,
    Processes,
    free_port,
    need,
    processes,
    start_blackbox,
    start_http_instance,
    start_prometheus,
    start_redis,
    wait_until,
)

from depmirror.cli.main import main
from depmirror.graph.health_spec import HealthSpec
from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.health.checker import UNHEALTHY_BELOW, PrometheusHealthChecker
from depmirror.health.evaluate import HealthReport, InstanceVerdict, collect_snapshot, fetch_health
from depmirror.health.queries import InstanceRef
from depmirror.health.rules import render_targets, scrape_configs

# One worker for the module: its tests run in order on one set of services (the override test reads the
# state the kill test left), and xdist's load distribution split them (a worker without the kill failed).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("health_prometheus")]

INTERVAL = 1.0
DOOMED_SAMPLES = 4  # configured per dependency: `failing` after 4 bad samples in a row, not the default 3
SPECS = {"doomed": HealthSpec(samples=DOOMED_SAMPLES)}
PROBED = [
    InstanceRef("web", "vm-a1", "primary"),
    InstanceRef("web", "vm-b1", "mirror"),
    InstanceRef("cache", "vm-a1", "primary"),
    InstanceRef("doomed", "vm-a1", "primary"),
]


@dataclass
class Lab:
    graph: Graph
    prometheus_url: str
    prometheus_config: Path
    procs: Processes
    doomed: Process

    def report(self, instances: list[InstanceRef] | None = None) -> HealthReport:
        return fetch_health(
            self.graph,
            self.prometheus_url,
            instances if instances is not None else PROBED,
            interval=INTERVAL,
            specs=SPECS,
            timeout=2,
        )


def verdict(report: HealthReport, key: str) -> InstanceVerdict:
    return next(v for v in report.verdicts if v.key == key)


def full_and_healthy(report: HealthReport) -> bool:
    return all(v.state == "healthy" and all(s.up is not None for s in v.samples) for v in report.verdicts)


def write_graph(path: Path, ports: dict[str, int]) -> Graph:
    command = "python3 -m http.server {port}"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "policy": {"health": {"unhealthy": 0.5}},
                "zones": {"zone-a": {}, "zone-b": {}},
                "vms": {
                    "vm-a1": {"address": "127.0.0.1", "zone": "zone-a"},
                    "vm-b1": {"address": "127.0.0.2", "zone": "zone-b"},
                },
                "dependencies": {
                    "web": {
                        "tier": 0,
                        "kind": "http",
                        "port": ports["web"],
                        "slo": {"latency_ms": 300, "error_ratio": 0.01},
                        "deploy": {"command": command},
                    },
                    "cache": {"tier": 1, "kind": "redis", "port": ports["cache"]},
                    "doomed": {"tier": 1, "kind": "http", "port": ports["doomed"], "deploy": {"command": command}},
                },
            }
        )
    )
    return load_graph(path)


def write_prometheus_config(workdir: Path, graph: Graph, blackbox: str) -> Path:
    targets = workdir / "targets.json"
    targets.write_text(json.dumps(render_targets(graph, PROBED)))
    config = workdir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": scrape_configs(blackbox, [str(targets)], INTERVAL),
            }
        )
    )
    return config


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    need(PROMETHEUS, BLACKBOX, REDIS)
    workdir = tmp_path_factory.mktemp("health")
    ports = {"web": free_port(), "cache": free_port(), "doomed": free_port()}
    graph = write_graph(workdir / "graph.yml", ports)
    with processes(workdir) as procs:
        start_http_instance(procs, "web-a1", "127.0.0.1", ports["web"])
        start_http_instance(procs, "web-b1", "127.0.0.2", ports["web"])
        start_redis(procs, "cache-a1", "127.0.0.1", ports["cache"])
        doomed = start_http_instance(procs, "doomed-a1", "127.0.0.1", ports["doomed"])
        config = write_prometheus_config(workdir, graph, start_blackbox(procs))
        _process, url = start_prometheus(procs, config)
        lab = Lab(graph, url, config, procs, doomed)
        # Enough samples for every probed instance to be judged on a full window.
        wait_until(lambda: full_and_healthy(lab.report()), 20, "every probed instance healthy")
        yield lab


def test_healthy_instances_score_high_and_show_their_queries_and_values(lab: Lab) -> None:
    report = lab.report()
    for key in ("web@vm-a1", "web@vm-b1", "cache@vm-a1"):
        found = verdict(report, key)
        assert found.state == "healthy", found
        assert found.score is not None and found.score >= 0.9
        assert 'probe_success{job="depmirror-blackbox", dependency="' in found.queries["up"]
        assert "probe_duration_seconds" in found.queries["latency"]
        assert len(found.samples) == 3
        fast_and_up = [s.up == 1.0 and s.latency is not None and s.latency < 0.3 for s in found.samples]
        assert all(fast_and_up), found.samples
    assert verdict(report, "web@vm-b1").zone == "zone-b"
    snapshot = report.snapshot()
    assert snapshot.instance("web", "vm-a1") is not None and snapshot.instance("web", "vm-a1") >= 0.9
    assert snapshot.zones["zone-a"] is not None and snapshot.zones["zone-a"] >= 0.9
    assert report.to_dict()["overall"] >= 0.9


def test_without_a_list_every_instance_prometheus_probes_is_judged(lab: Lab) -> None:
    snapshot, warnings = collect_snapshot(lab.graph, lab.prometheus_url, timeout=2)
    assert warnings == []
    report = fetch_health(lab.graph, lab.prometheus_url, timeout=2)
    found = verdict(report, "web@vm-a1")
    assert [b.at - a.at for a, b in zip(found.samples, found.samples[1:], strict=False)] == [1.0, 1.0]
    assert set(snapshot.instances) >= {"web@vm-a1", "web@vm-b1", "cache@vm-a1"}


def test_the_runner_recheck_sees_the_primary_and_its_mirror(lab: Lab) -> None:
    checker = PrometheusHealthChecker(lab.graph, lab.prometheus_url, None, 2.0, INTERVAL)
    view = asyncio.run(checker.check("web", "web@vm-a1"))
    assert view.failed_instance == "healthy"
    assert view.candidates == {"web@vm-b1": "healthy"}
    assert [v["instance"] for v in view.inputs["verdicts"]] == ["web@vm-a1", "web@vm-b1"]


def test_the_cli_shows_every_probed_instance_with_its_verdict_and_values(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    # No --interval: the step is the probe job's scrape interval (1s here), read from Prometheus.
    assert main(["health", "--graph", lab.graph.source, "--prometheus", lab.prometheus_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("web@vm-b1"))
    assert "zone-b" in row and "mirror" in row and "healthy" in row and "up=111" in row
    assert any(line.startswith("system health ") for line in lines)


def test_an_instance_with_no_data_is_unknown(lab: Lab) -> None:
    report = lab.report([InstanceRef("cache", "vm-b1", "mirror")])  # never probed: Prometheus has no series
    found = verdict(report, "cache@vm-b1")
    assert found.state == "unknown"
    assert found.score is None
    assert "no data" in found.reason
    assert all(s.up is None for s in found.samples)
    assert not found.allows_destructive_action
    assert report.snapshot().instance("cache", "vm-b1") is None


def test_a_killed_instance_goes_failing_after_the_configured_samples(lab: Lab) -> None:
    key = "doomed@vm-a1"
    lab.doomed.kill()
    seen: list[tuple[str, int]] = []

    def failing() -> InstanceVerdict | None:
        found = verdict(lab.report(), key)
        bad = sum(1 for s in found.samples if s.up == 0.0)
        seen.append((found.state, bad))
        return found if found.state == "failing" else None

    found = wait_until(failing, 20, f"{key} to be failing", every=0.25)
    # Not failing on the first bad samples: degraded while fewer than DOOMED_SAMPLES were bad.
    assert any(state == "degraded" and 0 < bad < DOOMED_SAMPLES for state, bad in seen), seen
    assert all(state != "failing" for state, bad in seen if bad < DOOMED_SAMPLES), seen
    assert len(found.samples) == DOOMED_SAMPLES
    assert all(s.up == 0.0 and s.score == 0.0 for s in found.samples)
    assert found.score == 0.0 and found.allows_destructive_action
    report = lab.report()
    assert [v.key for v in report.rollback_candidates()] == [key]
    assert report.snapshot().instance("doomed", "vm-a1") == 0.0
    checker = PrometheusHealthChecker(lab.graph, lab.prometheus_url, None, 2.0, INTERVAL)
    assert asyncio.run(checker.check("doomed", key)).failed_instance == "unhealthy"


def test_a_stopped_prometheus_gives_unknown_and_no_destructive_decision(lab: Lab) -> None:
    # A Prometheus of its own, so stopping it does not disturb the other tests.
    process, url = start_prometheus(lab.procs, lab.prometheus_config, name="prometheus-stopped")

    def healthy() -> bool:
        report = fetch_health(lab.graph, url, PROBED[:3], interval=INTERVAL, timeout=2)
        return all(v.state == "healthy" for v in report.verdicts)

    wait_until(healthy, 20, "the second Prometheus to see healthy instances")
    process.stop()
    started = time.monotonic()
    report = fetch_health(lab.graph, url, PROBED, interval=INTERVAL, timeout=2)
    assert time.monotonic() - started < 5, "an unreachable Prometheus must answer unknown fast"
    assert [v.state for v in report.verdicts] == ["unknown"] * len(PROBED)
    assert all("Prometheus unavailable" in v.reason and v.queries for v in report.verdicts)
    assert report.rollback_candidates() == []
    assert not any(v.allows_destructive_action for v in report.verdicts)
    assert report.warnings and "Prometheus unavailable" in report.warnings[0]
    snapshot, warnings = collect_snapshot(lab.graph, url, timeout=2)
    assert snapshot.instances == {} and warnings
    assert all(score is None for score in snapshot.zones.values())
    view = asyncio.run(PrometheusHealthChecker(lab.graph, url, None, 2.0, INTERVAL).check("web", "web@vm-a1"))
    assert view.failed_instance == "unknown" and view.healthy_targets() == []


def test_an_unhealthy_override_moves_the_runner_recheck_threshold(lab: Lab) -> None:
    # After the kill above, `doomed` scores 0.0: failing at the graph's threshold (0.5). An override of the
    # runner (runner/policy.py `use_threshold`) at 0.0 for this dependency makes nothing score below it.
    key = "doomed@vm-a1"
    checker = PrometheusHealthChecker(lab.graph, lab.prometheus_url, None, 2.0, INTERVAL)
    wait_until(
        lambda: asyncio.run(checker.check("doomed", key)).failed_instance == "unhealthy", 20, f"{key} to be failing"
    )

    def with_override(dependency: str) -> str:
        async def check() -> str:
            UNHEALTHY_BELOW.set((dependency, 0.0))
            return (await checker.check("doomed", key)).failed_instance

        return asyncio.run(check())

    # Down is still an SLO breach (degraded, "unknown" to the runner), but no longer below the threshold:
    # not `unhealthy`, so the runner does not roll back.
    assert with_override("doomed") == "unknown"
    assert with_override("web") == "unhealthy", "another dependency's override leaves this one's threshold"
