"""The one place the runner learns which dependencies exist: their names, from the graph file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from depmirror.errors import ConfigError


def load_dependency_names(graph_path: Path, config_file: str) -> set[str]:
    """Names of the dependencies in the graph file (validated by depmirror.graph_file.load_graph)."""
    if not graph_path.is_file():
        raise ConfigError(
            config_file, "graph", f"{graph_path} does not exist", "point graph: at the graph file"
        )
    # Imported here so the runner's other parts do not depend on the graph model's internals.
    from depmirror.graph_file import load_graph

    dependencies = load_graph(graph_path).dependencies
    if isinstance(dependencies, Mapping):
        return {str(name) for name in dependencies}
    return {str(dependency.name) for dependency in dependencies}
