"""`depmirror history`: read the rollback history (docs/history.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from depmirror.errors import ConfigError
from depmirror.fleet.history_report import stats_from_store
from depmirror.fleet.history_stats import GROUP_BY, Durations, HistoryStats
from depmirror.graph.load import load_graph
from depmirror.store import EVENT_KINDS, Event, default_store_url, open_store
from depmirror.store.filters import FilterError, build_filter, parse_since
from depmirror.store.model import utcnow

COLUMNS = ("id", "time", "kind", "dependency", "instance", "target", "outcome", "reason")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "history",
        help="show the rollback history",
        description="Show rollback history events, newest first. The store defaults to $DEPMIRROR_STORE, "
        "else ./depmirror.db.",
    )
    parser.add_argument("--store", default=None, help="store path or sqlite:///PATH (default: %(default)s)")
    parser.add_argument("--dependency", help="only this dependency")
    parser.add_argument("--kind", action="append", choices=EVENT_KINDS, help="only these kinds (repeatable)")
    parser.add_argument("--since", help="only newer events: a duration (30m, 2h, 7d) or an ISO 8601 time")
    parser.add_argument("--limit", type=int, default=50, help="at most this many events (default 50)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(func=run)
    # Optional, so that `depmirror history [--since ...]` keeps listing events.
    actions = parser.add_subparsers(dest="history_command", metavar="ACTION", required=False)
    stats = actions.add_parser(
        "stats",
        help="failovers, refusals, interrupted actions, flaps, time to switch and to fail back, top reasons",
        description="Statistics of the rollback history (docs/history.md, Statistics).",
    )
    stats.add_argument("--store", dest="stats_store", default=None, help="store path or URL")
    stats.add_argument("--since", dest="stats_since", default="30d", help="a duration (30d) or ISO 8601 time")
    stats.add_argument("--by", dest="stats_by", choices=GROUP_BY, default="dependency")
    stats.add_argument("--graph", dest="stats_graph", default=None, help="graph file: the zone of each VM (--by zone)")
    stats.add_argument("--format", dest="stats_format", choices=("table", "json"), default="table")
    stats.set_defaults(func=run_stats)


def run(args: argparse.Namespace) -> int:
    store_url = args.store or default_store_url()
    try:
        event_filter = build_filter(
            utcnow(), dependency=args.dependency, kinds=args.kind, since=args.since, limit=args.limit
        )
    except FilterError as error:
        field, _, problem = str(error).partition(": ")
        raise ConfigError("command line", f"--{field}", problem) from error
    # A missing, empty, corrupt, read-only or locked store raises StoreError: one line, exit 2.
    with open_store(store_url, create=False) as store:
        events = store.events(event_filter)
    if args.format == "json":
        json.dump([event.as_dict() for event in events], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(events))
    return 0


def _cell(event: Event, column: str) -> str:
    if column == "time":
        return event.time.strftime("%Y-%m-%d %H:%M:%S")
    value = getattr(event, column)
    if column == "kind" and event.action and event.kind in ("refused", "interrupted"):
        return f"{event.kind}({event.action})"
    text = "" if value is None else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def render_table(events: list[Event]) -> str:
    if not events:
        return "no events\n"
    rows = [list(COLUMNS)] + [[_cell(event, column) for column in COLUMNS] for event in events]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def run_stats(args: argparse.Namespace) -> int:
    now = utcnow()
    try:
        since = parse_since(args.stats_since, now)
    except FilterError as error:
        raise ConfigError("command line", "--since", str(error).partition(": ")[2]) from error
    graph = load_graph(args.stats_graph) if args.stats_graph else None
    with open_store(args.stats_store or default_store_url(), create=False) as store:
        stats = stats_from_store(store, since=since, until=now, by=args.stats_by, graph=graph)
    if args.stats_format == "json":
        json.dump(stats.as_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_stats(stats))
    return 0


STATS_COLUMNS = (
    "failovers",
    "failed",
    "shadow",
    "failbacks",
    "refusals",
    "interrupted",
    "flaps",
    "held",
    "fault->switched p50/p90/max",
    "switched->failback p50/p90/max",
)


def _seconds(durations: Durations) -> str:
    if durations.count == 0:
        return "-"
    return "/".join(_short_duration(value) for value in (durations.p50, durations.p90, durations.max))


def _short_duration(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.1f}s"


def render_stats(stats: HistoryStats) -> str:
    since = stats.since.strftime("%Y-%m-%d %H:%M:%S") if stats.since else "the start"
    lines = [f"{stats.events} events since {since} UTC, by {stats.by}"]
    if not stats.events:
        return lines[0] + "\n"
    rows = [[stats.by, *STATS_COLUMNS]]
    for group in (*stats.groups, stats.total):
        rows.append(
            [
                "(all)" if group.key == "*" else group.key,
                *(
                    str(value)
                    for value in (
                        group.failovers,
                        group.failovers_failed,
                        group.failovers_shadow,
                        group.failbacks,
                        group.refusals,
                        group.interrupted,
                        group.flaps,
                        group.held,
                    )
                ),
                _seconds(group.fault_to_switched),
                _seconds(group.switched_to_failback),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    if stats.total.top_reasons:
        lines.append("")
        lines.append("top reasons:")
        lines += [f"  {count:>5}  {reason}" for reason, count in stats.total.top_reasons]
    return "\n".join(lines) + "\n"
