"""The one place the runner learns which dependencies exist and where the graph places their instances."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from depmirror.errors import ConfigError
from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan


def load_placed_instances(graph_path: Path, config_file: str) -> dict[str, frozenset[str]]:
    """Each dependency of the graph file with the hosts its plan (from no recorded state) places it on.

    The runner checks alert labels against this until `adjust` records an applied plan in the store."""
    if not graph_path.is_file():
        raise ConfigError(config_file, "graph", f"{graph_path} does not exist", "point graph: at the graph file")
    plan = compute_plan(load_graph(graph_path))
    return {item.name: frozenset(i.host for i in item.instances) for item in plan.dependencies}


def merge_placed(*sources: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    merged: dict[str, frozenset[str]] = {}
    for source in sources:
        for name, hosts in source.items():
            merged[name] = merged.get(name, frozenset()) | hosts
    return merged
