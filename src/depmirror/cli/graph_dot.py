"""`depmirror graph`: the dependency graph as Graphviz DOT (or SVG through `dot`), from the plan.

Each dependency shows its weight, replication factor and mode; soft calls are dashed, calls inside a
dependency cycle are red and say so, and an `entry` dependency has an arrow from outside the graph.
"""

from __future__ import annotations

import shutil
import subprocess

from depmirror.errors import DepmirrorError
from depmirror.graph.model import Edge
from depmirror.planner.plan import Plan
from depmirror.planner.weights import strongly_connected_components

_CYCLE_COLOUR = "#c00000"


def render_dot(plan: Plan) -> str:
    graph = plan.graph
    lines = ["digraph depmirror {", "  rankdir=LR;", '  node [style=filled, fontname="sans-serif"];']
    for name, service in sorted(graph.services.items()):
        lines.append(f'  "{name}" [shape=box, fillcolor="#dddddd", label="{name}\\ntier {service.tier}"];')
    for item in sorted(plan.dependencies, key=lambda d: d.name):
        dep, value = item.dependency, item.weight.value
        mode = "AA" if item.mode == "active-active" else "AP"
        stateful = ", stateful" if dep.stateful else ""
        label = (
            f"{dep.name}\\n{dep.kind} tier {dep.tier}{stateful}\\nweight {value:.2f}\\n"
            f"RF {item.replication_factor} {mode} ({item.mode})"
        )
        lines.append(f'  "{dep.name}" [shape=ellipse, fillcolor="{_colour(value)}", label="{label}"];')
        if dep.entry_rate is not None:
            lines.append(f'  "entry:{dep.name}" [shape=point, label=""];')
            lines.append(f'  "entry:{dep.name}" -> "{dep.name}" [label="entry {dep.entry_rate:g}/s"];')
    for edge, cyclic in _edges_marked(plan):
        attributes = [f'label="{edge.rate:g}/s{" soft" if not edge.required else ""}{" (cycle)" if cyclic else ""}"']
        if not edge.required:
            attributes.append("style=dashed")
        if cyclic:
            attributes += [f'color="{_CYCLE_COLOUR}"', f'fontcolor="{_CYCLE_COLOUR}"', "penwidth=2"]
        lines.append(f'  "{edge.consumer}" -> "{edge.dependency}" [{", ".join(attributes)}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _edges_marked(plan: Plan) -> list[tuple[Edge, bool]]:
    """Each call, and whether it lies on a cycle (both ends in one strongly connected component)."""
    graph = plan.graph
    edges = graph.edges()
    successors: dict[str, list[str]] = {name: [] for name in (*graph.services, *graph.dependencies)}
    for edge in edges:
        successors[edge.consumer].append(edge.dependency)
    component_of: dict[str, int] = {}
    for number, component in enumerate(strongly_connected_components(sorted(successors), successors)):
        for name in component:
            component_of[name] = number
    cyclic_components = {component_of[name] for cycle in plan.cycles for name in cycle}
    return [
        (
            edge,
            component_of.get(edge.consumer) == component_of.get(edge.dependency)
            and component_of.get(edge.consumer) in cyclic_components,
        )
        for edge in edges
    ]


def _colour(weight: float) -> str:
    # Pale yellow (light) to red (critical): readable with black text at both ends.
    red, green, blue = 255, int(235 - 170 * weight), int(170 - 120 * weight)
    return f"#{red:02x}{green:02x}{blue:02x}"


def svg(dot: str) -> bytes:
    binary = shutil.which("dot")
    if binary is None:
        raise DepmirrorError("Graphviz `dot` not found: install graphviz, or use --format dot")
    try:
        done = subprocess.run([binary, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise DepmirrorError(
            "Graphviz dot did not finish within 60 s: use --format dot for a graph this large"
        ) from None
    if done.returncode != 0:
        raise DepmirrorError(f"Graphviz dot failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout
