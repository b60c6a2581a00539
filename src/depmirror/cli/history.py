"""`depmirror history`: read the rollback history (docs/history.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from depmirror.errors import ConfigError
from depmirror.store import EVENT_KINDS, Event, default_store_url, open_store
from depmirror.store.filters import FilterError, build_filter
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
