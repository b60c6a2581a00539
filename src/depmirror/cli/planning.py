"""`depmirror plan`, `depmirror explain DEP`, `depmirror graph`: the planner from the command line."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from depmirror.cli.graph_dot import render_dot, svg
from depmirror.cli.plan_table import DEFAULT_WIDTH, render_table
from depmirror.errors import ConfigError, DepmirrorError
from depmirror.fleet.current import load_planner_inputs
from depmirror.graph.load import load_graph
from depmirror.planner.learning import LearnedRf
from depmirror.planner.plan import DependencyPlan, Plan, compute_plan
from depmirror.planner.state import HealthSnapshot, State, load_health, load_state
from depmirror.planner.weights import ENTRY

__all__ = ["register", "render_dot", "render_explanation", "render_table"]

DEFAULT_GRAPH = "inventories/example/graph.yml"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = subparsers.add_parser("plan", help="show what should run where, and what must change")
    _planner_options(plan)
    plan.add_argument("--format", choices=("table", "json"), default="table")
    plan.add_argument(
        "--sort",
        choices=("weight", "name"),
        default="weight",
        help="table order: most critical first (default), or by name as the JSON lists them",
    )
    plan.add_argument(
        "--wide", action="store_true", help=f"one line per dependency however long (default: wrap at {DEFAULT_WIDTH})"
    )
    plan.set_defaults(func=_run_plan)

    explain = subparsers.add_parser("explain", help="why a dependency gets its weight, RF, mode and VMs")
    explain.add_argument("dependency", metavar="DEP")
    _planner_options(explain)
    explain.set_defaults(func=_run_explain)

    graph = subparsers.add_parser(
        "graph", help="draw the dependency graph: weight, RF and mode per node, soft calls dashed, cycles in red"
    )
    _planner_options(graph)
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
    parser.add_argument(
        "--now",
        type=_epoch,
        metavar="EPOCH",
        help="evaluation time in epoch seconds (default: the clock); overrides in force then apply",
    )


# Year 9999: the last second a timestamp in the store (a datetime) can name.
LAST_EPOCH = 253_402_300_799.0


def _epoch(text: str) -> float:
    """`--now`: a finite time in epoch seconds, 0 to the year 9999 (NaN once reached the plan's JSON)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of epoch seconds") from None
    if not math.isfinite(value) or not 0.0 <= value <= LAST_EPOCH:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a time: give epoch seconds from 0 to {LAST_EPOCH:.0f}")
    return value


def _compute(args: argparse.Namespace) -> Plan:
    graph = load_graph(args.graph)
    now = time.time() if args.now is None else args.now
    # Overrides in force at `now` (not the wall clock: `--now` replays a moment), the history up to it.
    current = load_planner_inputs(graph, store=args.store, prometheus_url=args.prometheus, now=now)
    for warning in current.warnings:
        print(f"depmirror: warning: {warning}", file=sys.stderr)
    state = load_state(args.state) if args.state else current.state or State()
    health = load_health(args.health) if args.health else current.health or HealthSnapshot()
    return compute_plan(current.graph or graph, state, health, now, history=current.failures)


def _run_plan(args: argparse.Namespace) -> int:
    plan = _compute(args)
    if args.format == "json":
        try:
            # The graph refuses NaN and infinity; a non-finite number here would be a bug, never bad JSON.
            text = json.dumps(plan.to_dict(), indent=2, allow_nan=False) + "\n"
        except ValueError as error:
            raise DepmirrorError(f"the plan holds a number JSON cannot carry ({error}): a bug to report") from None
    else:
        text = render_table(plan, sort=args.sort, width=None if args.wide else DEFAULT_WIDTH)
    return _write(text.encode(), None)


def _write(data: bytes, output: str | None) -> int:
    """Write to the output file, or to standard output; a failure is one line (exit 2), never a traceback."""
    if output is None:
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        except BrokenPipeError:
            # `depmirror plan | head`: the reader is gone. Point stdout at /dev/null so the interpreter's
            # own flush at exit does not raise again (the Python docs' recipe, "Note on SIGPIPE").
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError as error:  # a full disk (`> /dev/full`), a closed descriptor: same recipe, then say so
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise DepmirrorError(f"cannot write to standard output: {error.strerror or error}") from None
        return 0
    try:
        with open(output, "wb") as handle:
            handle.write(data)
    except OSError as error:
        raise DepmirrorError(f"cannot write {output}: {error.strerror or error}") from None
    return 0


def _run_explain(args: argparse.Namespace) -> int:
    plan = _compute(args)
    try:
        dep = plan.dependency(args.dependency)
    except KeyError:
        names = ", ".join(sorted(plan.graph.dependencies))
        raise ConfigError(
            args.graph, f"dependencies.{args.dependency}", "no such dependency", f"one of: {names}"
        ) from None
    return _write(render_explanation(plan, dep).encode(), None)


def render_explanation(plan: Plan, dep: DependencyPlan) -> str:
    w, policy, rf = dep.weight, plan.graph.policy, dep.rf
    c = policy.weights
    via = _impact_origin(w.impact_via, w.impact_source, w.impact_factor)
    lines = [
        f"{dep.name}: {dep.dependency.kind} on port {dep.dependency.port}, tier {dep.dependency.tier}",
        f"weight {w.value:.3f} = {c.tier} * tier {w.tier:.3f} + {c.frequency} * frequency {w.frequency:.3f}"
        f" + {c.impact} * impact {w.impact:.3f}",
        f"  frequency: {w.rate:g} req/s{_entry(w.entry_rate)}, log-scaled against {c.reference_rate:g} req/s",
        f"  impact: {w.consumers} direct consumer(s){via}" + ("; member of a dependency cycle" if w.in_cycle else ""),
        f"replication factor {dep.replication_factor} (min {rf.min_rf}{_raised(rf.learned)}, max {rf.max_rf})",
        f"  raw = {policy.replication.rf_scale:g} * weight {w.value:.3f} * (1 + system health impact "
        f"{rf.system_health_impact:.3f}) = {rf.raw:.3f}  [{rf.system_health_note}]",
        f"  hysteresis: {rf.direction}: {rf.reason}",
    ]
    if rf.learned is not None:  # policy.learning raised the minimum: the events it rests on, by id
        events = ", ".join(f"#{event}" for event in rf.learned.events) or "none recorded with an id"
        lines.append(f"  {rf.learned.reason}")
        lines.append(f"  history events: {events} (depmirror history --kind rollback --dependency {dep.name})")
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


def _raised(learned: LearnedRf | None) -> str:
    return "" if learned is None else f", raised to {learned.min_rf} by the history"


def _impact_origin(via: str | None, source: str | None, factor: float | None) -> str:
    if via is None:
        return " (nothing calls it)"
    if via == ENTRY:
        return " and callers outside the graph (entry): they need it as much as its own tier says"
    passed = f"; that call passes on {factor:.3f} of its criticality" if factor is not None else ""
    origin = "callers outside the graph" if source == ENTRY else source
    return f" via {via} (origin {origin}{passed})"


def _entry(rate: float | None) -> str:
    return "" if rate is None else f" (of which {rate:g} from outside the graph)"


def _run_graph(args: argparse.Namespace) -> int:
    dot = render_dot(_compute(args))
    return _write(dot.encode() if args.format == "dot" else svg(dot), args.output)
