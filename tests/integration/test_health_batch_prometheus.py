"""The runner's batched re-check (`check_many`) against a real Prometheus and blackbox exporter: one call
answers every dependency of a batch with what one re-check each would have seen."""

from __future__ import annotations

import asyncio

from tests.integration.test_health_prometheus import INTERVAL, Lab, lab

from depmirror.health.checker import HealthRequest, PrometheusHealthChecker

__all__ = ["lab"]  # the module's Prometheus, blackbox and instances (started once for this module)

WANTED = [("web", "web@vm-a1"), ("cache", "cache@vm-a1"), ("web", "web@vm-b1"), ("nothing", "nothing@vm-a1")]


def test_one_call_answers_a_batch_as_one_recheck_each_would(lab: Lab) -> None:
    checker = PrometheusHealthChecker(lab.graph, lab.prometheus_url, None, 2.0, INTERVAL)

    views = asyncio.run(checker.check_many([HealthRequest(d, i) for d, i in WANTED]))

    alone = [asyncio.run(checker.check(d, i)) for d, i in WANTED]
    assert [v.failed_instance for v in views] == ["healthy", "healthy", "healthy", "unknown"]
    assert [(v.failed_instance, v.candidates) for v in views] == [(v.failed_instance, v.candidates) for v in alone]
    assert views[0].candidates == {"web@vm-b1": "healthy"}
    assert views[2].candidates == {"web@vm-a1": "healthy"}
    # A name the graph does not have (hostile or stale) is unknown, never a reason to act.
    assert views[3].candidates == {} and views[3].healthy_targets() == []


def test_an_override_threshold_applies_to_its_dependency_only(lab: Lab) -> None:
    checker = PrometheusHealthChecker(lab.graph, lab.prometheus_url, None, 2.0, INTERVAL)
    # 1.5: no score reaches it, so web's healthy instances count as failing; cache keeps the graph's.
    views = asyncio.run(
        checker.check_many([HealthRequest("web", "web@vm-a1", 1.5), HealthRequest("cache", "cache@vm-a1")])
    )
    assert views[0].failed_instance != "healthy"
    assert views[1].failed_instance == "healthy"
