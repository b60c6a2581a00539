"""`depmirror health`: every instance's verdict, score and the values Prometheus gave for it."""

from __future__ import annotations

import argparse
import json
import os
import sys

from depmirror.durations import parse_duration
from depmirror.errors import ConfigError
from depmirror.graph.load import load_graph
from depmirror.health.evaluate import HealthReport, InstanceVerdict, fetch_health
from depmirror.health.queries import InstanceRef
from depmirror.planner.state import load_state

DEFAULT_GRAPH = "inventories/example/graph.yml"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    health = subparsers.add_parser("health", help="health of every instance from Prometheus, and why")
    health.add_argument("--graph", default=DEFAULT_GRAPH, metavar="FILE", help=f"graph file (default {DEFAULT_GRAPH})")
    health.add_argument(
        "--prometheus",
        metavar="URL",
        default=os.environ.get("DEPMIRROR_PROMETHEUS_URL"),
        help="Prometheus base URL (default: $DEPMIRROR_PROMETHEUS_URL)",
    )
    health.add_argument(
        "--state",
        metavar="FILE.json",
        help="judge the instances listed here (default: every instance Prometheus has data on)",
    )
    health.add_argument(
        "--interval",
        metavar="DURATION",
        help="time between samples (default: the probe job's scrape interval, as Prometheus reports it)",
    )
    health.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="per query (default 5)")
    health.add_argument(
        "--format",
        choices=("table", "json", "snapshot"),
        default="table",
        help="snapshot: the JSON that `depmirror plan --health` reads",
    )
    health.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if not args.prometheus:
        raise ConfigError("command line", "--prometheus", "no Prometheus URL", "pass --prometheus URL")
    try:
        interval = None if args.interval is None else parse_duration(args.interval)
    except ValueError as error:
        raise ConfigError("command line", "--interval", str(error), "e.g. 5s") from error
    graph = load_graph(args.graph)
    instances = None
    if args.state:
        instances = [InstanceRef(r.dependency, r.host, r.role) for r in load_state(args.state).instances]
    report = fetch_health(
        graph,
        args.prometheus,
        instances,
        token=os.environ.get("DEPMIRROR_PROMETHEUS_TOKEN"),
        timeout=args.timeout,
        interval=interval,
    )
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    elif args.format == "snapshot":
        print(json.dumps(report.snapshot().to_dict(), indent=2))
    else:
        print(_table(report))
    for warning in report.warnings:
        print(f"depmirror: warning: {warning}", file=sys.stderr)
    return 0


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _values(verdict: InstanceVerdict) -> str:
    if not verdict.samples:
        return ""
    newest = verdict.samples[-1]
    latency = "-" if newest.latency is None else f"{newest.latency * 1000:.1f}ms"
    ups = "".join("?" if s.up is None else ("1" if s.up >= 0.5 else "0") for s in verdict.samples)
    return f"up={ups} latency={latency} errors={_number(newest.error_ratio, 3)}"


def _table(report: HealthReport) -> str:
    rows = [("INSTANCE", "ZONE", "ROLE", "VERDICT", "SCORE", "VALUES (newest; up oldest..newest)", "REASON")]
    for v in sorted(report.verdicts, key=lambda v: (v.dependency, v.host)):
        rows.append((v.key, v.zone or "-", v.role or "-", v.state, _number(v.score), _values(v), v.reason))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows]
    summary = report.to_dict()
    zones = ", ".join(f"{zone} {_number(score)}" for zone, score in summary["zones"].items())
    lines.append("")
    lines.append(f"system health {_number(summary['overall'])}; zones: {zones}")
    return "\n".join(lines)
