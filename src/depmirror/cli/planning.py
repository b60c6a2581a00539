"""`depmirror plan`, `depmirror explain DEP`, `depmirror graph`: the planner from the command line."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from depmirror.errors import ConfigError, DepmirrorError
from depmirror.fleet.current import load_planner_inputs
from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.planner.plan import DependencyPlan, Plan, compute_plan
from depmirror.planner.state import HealthSnapshot, State, load_health, load_state
from depmirror.planner.weights import compute_weights

DEFAULT_GRAPH = "inventories/example/graph.yml"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = subparsers.add_parser("plan", help="show what should run where, and what must change")
    _planner_options(plan)
    plan.add_argument("--format", choices=("table", "json"), default="table")
    plan.set_defaults(func=_run_plan)

    explain = subparsers.add_parser("explain", help="why a dependency gets its weight, RF, mode and VMs")
    explain.add_argument("dependency", metavar="DEP")
    _planner_options(explain)
    explain.set_defaults(func=_run_explain)

    graph = subparsers.add_parser("graph", help="draw the dependency graph, nodes coloured by weight")
    graph.add_argument("--graph", default=DEFAULT_GRAPH, metavar="FILE", help=f"graph file (default {DEFAULT_GRAPH})")
    graph.add_argument("--format", choices=("dot", "svg"), default="dot")
    graph.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    graph.set_defaults(func=_run_graph)


def _planner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--graph", default=DEFAULT_GRAPH, metavar="FILE", help=f"graph file (default {DEFAULT_GRAPH})")
    parser.add_argument("--state", metavar="FILE.json", help="what runs now and earlier RF decisions (JSON)")
    parser.add_argument("--health", metavar="FILE.json", help="health scores per instance, VM and zone (JSON)")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="read what runs now from the state store (SQLite path or sqlite: URL) instead of --state",
    )
    parser.add_argument("--prometheus", metavar="URL", help="read health from this Prometheus instead of --health")
    parser.add_argument("--now", type=float, metavar="EPOCH", help="evaluation time (default: the clock)")


def _compute(args: argparse.Namespace) -> Plan:
    graph = load_graph(args.graph)
    current = load_planner_inputs(graph, store=args.store, prometheus_url=args.prometheus)
    for warning in current.warnings:
        print(f"depmirror: warning: {warning}", file=sys.stderr)
    state = load_state(args.state) if args.state else current.state or State()
    health = load_health(args.health) if args.health else current.health or HealthSnapshot()
    now = time.time() if args.now is None else args.now
    return compute_plan(graph, state, health, now)


def _run_plan(args: argparse.Namespace) -> int:
    plan = _compute(args)
    if args.format == "json":
        json.dump(plan.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(plan))
    return 0


def render_table(plan: Plan) -> str:
    rows = [("DEPENDENCY", "KIND", "PORT", "WEIGHT", "RF", "MODE", "INSTANCES (role@host/zone)", "CHANGES")]
    for dep in plan.dependencies:
        instances = ", ".join(f"{i.role}@{i.host}/{i.zone}" for i in dep.instances)
        changes = ", ".join(f"{a.action} {a.host}" for a in dep.actions if a.action != "keep") or "-"
        rows.append(
            (
                dep.name,
                dep.dependency.kind,
                str(dep.dependency.port),
                f"{dep.weight.value:.3f}",
                str(dep.replication_factor),
                dep.mode,
                instances,
                changes,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1] for row in rows]
    summary = plan.to_dict()["summary"] if plan.dependencies else {}
    notes = [
        f"note: {d.name}: {cut}" for d in plan.dependencies for cut in (d.rf.budget_cut, d.rf.placement_cut) if cut
    ]
    notes += [f"warning: {w}" for w in plan.warnings]
    notes += [f"removed: {a.action} {a.dependency}@{a.host}: {a.reason}" for a in plan.removed]
    footer = (
        f"\n{summary.get('provision', 0)} to provision, {summary.get('keep', 0)} to keep, "
        f"{summary.get('decommission', 0)} to decommission; cost {plan.budget['used']:g}"
        + (f" of budget {plan.budget['limit']:g}" if plan.budget["limit"] is not None else "")
    )
    return "\n".join(lines + notes) + footer + "\n"


def _run_explain(args: argparse.Namespace) -> int:
    plan = _compute(args)
    try:
        dep = plan.dependency(args.dependency)
    except KeyError:
        names = ", ".join(sorted(plan.graph.dependencies))
        raise ConfigError(
            args.graph, f"dependencies.{args.dependency}", "no such dependency", f"one of: {names}"
        ) from None
    sys.stdout.write(render_explanation(plan, dep))
    return 0


def render_explanation(plan: Plan, dep: DependencyPlan) -> str:
    w, policy, rf = dep.weight, plan.graph.policy, dep.rf
    c = policy.weights
    via = f" via {w.impact_via} (origin {w.impact_source})" if w.impact_via else " (nothing calls it)"
    lines = [
        f"{dep.name}: {dep.dependency.kind} on port {dep.dependency.port}, tier {dep.dependency.tier}",
        f"weight {w.value:.3f} = {c.tier} * tier {w.tier:.3f} + {c.frequency} * frequency {w.frequency:.3f}"
        f" + {c.impact} * impact {w.impact:.3f}",
        f"  frequency: {w.rate:g} req/s, log-scaled against {c.reference_rate:g} req/s",
        f"  impact: {w.consumers} direct consumer(s){via}" + ("; member of a dependency cycle" if w.in_cycle else ""),
        f"replication factor {dep.replication_factor} (min {rf.min_rf}, max {rf.max_rf})",
        f"  raw = {policy.replication.rf_scale:g} * weight {w.value:.3f} * (1 + system health impact "
        f"{rf.system_health_impact:.3f}) = {rf.raw:.3f}  [{rf.system_health_note}]",
        f"  hysteresis: {rf.direction}: {rf.reason}",
    ]
    lines += [f"  cut: {cut}" for cut in (rf.budget_cut, rf.placement_cut) if cut]
    lines.append(f"mode {dep.mode}: {dep.mode_reason}")
    if plan.zones.active:  # a zone is unhealthy or shifted, or of unknown health beside healthy ones
        lines.append("zones:")
        lines += [f"  {v.rule}: {v.effect}" for _, v in sorted(plan.zones.verdicts.items())]
    lines.append("placement:")
    lines += [f"  {i.role} on {i.host} ({i.zone}, {i.address}:{i.port}): {i.reason}" for i in dep.instances]
    lines += [f"  {a.action} {a.host}: {a.reason}" for a in dep.actions if a.action == "decommission"]
    lines += [f"  zone rule: {note}" for note in dep.notes if note != rf.placement_cut]
    return "\n".join(lines) + "\n"


def _run_graph(args: argparse.Namespace) -> int:
    graph = load_graph(args.graph)
    dot = render_dot(graph)
    output = dot.encode() if args.format == "dot" else _svg(dot)
    if args.output:
        with open(args.output, "wb") as handle:
            handle.write(output)
    else:
        sys.stdout.buffer.write(output)
    return 0


def render_dot(graph: Graph) -> str:
    weights = compute_weights(graph).weights
    lines = ["digraph depmirror {", "  rankdir=LR;", '  node [style=filled, fontname="sans-serif"];']
    for name, service in sorted(graph.services.items()):
        lines.append(f'  "{name}" [shape=box, fillcolor="#dddddd", label="{name}\\ntier {service.tier}"];')
    for name, dep in sorted(graph.dependencies.items()):
        value = weights[name].value
        label = f"{name}\\n{dep.kind} tier {dep.tier}\\nweight {value:.2f}"
        lines.append(f'  "{name}" [shape=ellipse, fillcolor="{_colour(value)}", label="{label}"];')
    for edge in graph.edges():
        lines.append(f'  "{edge.consumer}" -> "{edge.dependency}" [label="{edge.rate:g}/s"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _colour(weight: float) -> str:
    # Pale yellow (light) to red (critical): readable with black text at both ends.
    red, green, blue = 255, int(235 - 170 * weight), int(170 - 120 * weight)
    return f"#{red:02x}{green:02x}{blue:02x}"


def _svg(dot: str) -> bytes:
    binary = shutil.which("dot")
    if binary is None:
        raise DepmirrorError("Graphviz `dot` not found: install graphviz, or use --format dot")
    done = subprocess.run([binary, "-Tsvg"], input=dot.encode(), capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        raise DepmirrorError(f"Graphviz dot failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout
