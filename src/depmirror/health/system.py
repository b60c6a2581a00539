"""Health of VMs, zones and the whole system from instance verdicts, and the planner's HealthSnapshot."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from statistics import fmean

from depmirror.graph.model import Graph
from depmirror.planner.state import HealthSnapshot


def mean_known(scores: Iterable[float | None]) -> float | None:
    """Mean of the known scores; None when nothing is known (unknown stays unknown, it is not 0 or 1)."""
    values = [s for s in scores if s is not None]
    return fmean(values) if values else None


def aggregate(
    graph: Graph, instance_scores: Mapping[tuple[str, str], float | None]
) -> tuple[dict[str, float | None], dict[str, float | None], float | None]:
    """(per VM, per zone, overall): each the mean of the known instance scores inside it."""
    by_vm: dict[str, list[float | None]] = {host: [] for host in graph.vms}
    by_zone: dict[str, list[float | None]] = {zone: [] for zone in graph.zones}
    for (_dependency, host), value in instance_scores.items():
        vm = graph.vms.get(host)
        if vm is None:
            continue
        by_vm[host].append(value)
        by_zone.setdefault(vm.zone, []).append(value)
    vms = {host: mean_known(values) for host, values in by_vm.items()}
    zones = {zone: mean_known(values) for zone, values in by_zone.items()}
    return vms, zones, mean_known(instance_scores.values())


def snapshot(graph: Graph, instance_scores: Mapping[tuple[str, str], float | None]) -> HealthSnapshot:
    vms, zones, _overall = aggregate(graph, instance_scores)
    instances = {f"{dependency}@{host}": value for (dependency, host), value in instance_scores.items()}
    return HealthSnapshot(instances=instances, vms=vms, zones=zones)
