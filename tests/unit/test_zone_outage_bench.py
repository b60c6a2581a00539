"""bench/zone_outage.py's pure parts: the graph it deploys plans as the issue asks, the replay of the
worker's gather over measured arrivals, and the figures of its JSON."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def zf() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("_zone_fleet")
    finally:
        sys.path.remove(str(BENCH))


def test_the_graph_holds_sixty_dependencies_with_the_clients_and_spreads_primaries(
    zf: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "graph.yml"
    path.write_text(zf.dump(zf.zone_graph(60)))
    graph = load_graph(path)
    assert len(graph.dependencies) == 60
    ports = [d.port for d in graph.dependencies.values()]
    assert len(set(ports)) == len(ports)
    plan = compute_plan(graph).to_dict()
    by_name = {item["name"]: item for item in plan["dependencies"]}
    assert all(by_name[zf.client_http(i)]["mode"] == "active-active" for i in range(zf.CLIENT_HTTP))
    assert all(graph.dependencies[zf.client_redis(i)].kind == "redis" for i in range(zf.CLIENT_REDIS))
    # WAIT 1 after a zone cut needs a replica outside the cut zone and the new primary's.
    assert all(len(by_name[zf.client_redis(i)]["instances"]) == 3 for i in range(zf.CLIENT_REDIS))
    zones = [graph.vms[item["primary"]["host"]].zone for item in plan["dependencies"]]
    assert len(zones) == 60 and min(zones.count(z) for z in set(zones)) >= 15
    assert not plan["warnings"]


def test_too_few_dependencies_for_the_clients_is_refused(zf: ModuleType) -> None:
    with pytest.raises(ValueError, match="at least 8"):
        zf.zone_graph(7)


@pytest.mark.parametrize(
    ("window", "most", "passes"),
    [
        (0.2, 0.2, [[0.6, 0.65, 0.8], [1.0, 1.1], [1.5, 1.6, 1.62], [2.3]]),
        (0.2, 1.0, [[0.6, 0.65, 0.8, 1.0, 1.1], [1.5, 1.6, 1.62], [2.3]]),
        (0.5, 2.0, [[0.6, 0.65, 0.8, 1.0, 1.1, 1.5, 1.6, 1.62], [2.3]]),  # 0.68 s of quiet ends it
    ],
)
def test_the_gather_replay_takes_what_the_worker_would_take(
    zf: ModuleType, window: float, most: float, passes: list[list[float]]
) -> None:
    arrivals = [0.6, 0.65, 0.8, 1.0, 1.1, 1.5, 1.6, 1.62, 2.3]
    assert [taken for taken, _ in zf.gather_passes(arrivals, window, most)] == passes
    assert zf.gather_passes([1.0], window, most) == [([1.0], round(1.0 + window, 3))]


def _event(releases: dict[str, str]) -> Any:
    return SimpleNamespace(details={"releases": releases})


def test_reloads_count_distinct_releases_per_lb(zf: ModuleType) -> None:
    events = [_event({"lb1": "r1"}), _event({"lb1": "r1"}), _event({"lb1": "r2", "lb2": "r9"}), _event({})]
    assert zf.reloads_by_lb(events) == {"lb1": 2, "lb2": 1}


def _outage(affected: list[str], events: dict[str, int], first: float, last: float | None) -> dict[str, Any]:
    return {
        "affected": affected,
        "switched": dict.fromkeys(affected, 1.0),
        "events_per_dependency": events,
        "fault_to_first_switched_s": first,
        "fault_to_last_switched_s": last,
        "reloads": {"lb1": 2},
        "unaffected_touched": [],
        "client_errors": 0,
        "client_requests": 100,
        "redis_acked": 10,
        "redis_lost": 0,
    }


def test_the_summary_counts_events_per_affected_dependency_and_leaves_out_incomplete_outages(
    zf: ModuleType,
) -> None:
    summary = zf.outage_summary(
        [
            _outage(["a", "b"], {"a": 1, "b": 1}, 1.5, 2.5),
            _outage(["c", "d"], {"c": 2, "d": 1, "x": 1}, 1.2, None),  # d never switched: no last time
        ]
    )
    assert summary["outages"] == 2 and summary["affected_dependencies"] == 4
    assert summary["events_per_affected_dependency"] == 1.25
    assert summary["fault_to_last_switched_p50_s"] == 2.5
    assert summary["fault_to_first_switched_p50_s"] == 1.2
    assert summary["reloads_per_lb_per_outage_max"] == 2
