"""`depmirror zone shift|status|end`: move traffic away from a zone, with an expiry, and back (docs/cli.md)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import datetime
from typing import Any

from depmirror.cli.planning import DEFAULT_GRAPH
from depmirror.durations import parse_duration
from depmirror.errors import ConfigError, DepmirrorError
from depmirror.fleet.zonal_shift import DEFAULT_EXPIRY_S, MAX_NAME, ShiftRequest, check_expiry, check_text
from depmirror.fleet.zonal_shift_service import end_shift, start_shift, status
from depmirror.graph.load import load_graph
from depmirror.store import default_store_url, open_store
from depmirror.store.model import utcnow

STATUS_COLUMNS = ("zone", "state", "started_ts", "expires_ts", "ended_ts", "created_by", "reason", "end_reason")
DEFAULT_FAILBACK_HOLD = "5m"


class ShiftRefused(DepmirrorError):
    """A safety check refused the shift (recorded in the history as `refused`)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "zone",
        help="zonal shifts: move every primary out of a zone, with an expiry, and back",
        description="Zonal shifts (docs/rollback.md, 'A zone outage, step by step'). The store defaults to "
        "$DEPMIRROR_STORE, else ./depmirror.db.",
    )
    actions = parser.add_subparsers(dest="zone_command", metavar="ACTION", required=True)

    shift = actions.add_parser("shift", help="shift a zone: queue the switchover of every primary in it")
    shift.add_argument("zone", metavar="ZONE")
    shift.add_argument("--expires", default="1h", help="when the shift ends by itself (default 1h, at most 72h)")
    shift.add_argument("--reason", required=True, help="why: recorded in the history")
    shift.add_argument("--shadow", action="store_true", help="record what would move, change nothing")
    _common(shift)
    shift.set_defaults(func=_shift)

    show = actions.add_parser("status", help="shifts in force, and those ended in the last day")
    show.add_argument("--store", default=None, help="store path or URL")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(func=_status)

    end = actions.add_parser("end", help="end a zone's shift: queue the failback of what it moved")
    end.add_argument("zone", metavar="ZONE")
    end.add_argument("--reason", default="", help="why (default: ended by NAME)")
    end.add_argument(
        "--failback-hold",
        default=DEFAULT_FAILBACK_HOLD,
        help="queue the failbacks due after this long (default 5m); the runner's failback policy decides",
    )
    _common(end)
    end.set_defaults(func=_end)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--graph", default=DEFAULT_GRAPH, metavar="FILE", help=f"graph file (default {DEFAULT_GRAPH})")
    parser.add_argument("--store", default=None, help="store path or URL")
    parser.add_argument("--by", default=None, help="who does it (default: the login name)")
    parser.add_argument("--format", choices=("table", "json"), default="table")


def _who(args: argparse.Namespace) -> str:
    name = args.by if args.by is not None else _login()
    problem = check_text(name, "name (--by)", MAX_NAME)
    if problem:
        raise ConfigError("command line", "--by", problem)
    return str(name)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return "operator"


def _seconds(value: str, flag: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as error:
        raise ConfigError("command line", flag, str(error), "a duration such as 30m or 1h") from error


def _shift(args: argparse.Namespace) -> int:
    expires_s = _seconds(args.expires, "--expires") if args.expires else DEFAULT_EXPIRY_S
    problem = check_expiry(expires_s)
    if problem:
        raise ConfigError("command line", "--expires", problem)
    graph = load_graph(args.graph)
    request = ShiftRequest(args.zone, args.reason, _who(args), utcnow(), expires_s)
    with open_store(args.store or default_store_url()) as store:
        result = start_shift(
            store, graph, request, shadow=args.shadow, trigger={"type": "cli", "by": request.created_by}
        )
    if result.shift is None and result.event.kind == "refused":
        raise ShiftRefused(f"zone shift refused: {result.event.reason} (recorded as event {result.event.id})")
    document = {
        "zone": request.zone,
        "shadow": bool(args.shadow),
        "shift": None if result.shift is None else result.shift.as_dict(),
        "moved": [{"dependency": m.dependency, "instance": m.instance} for m in result.decision.moves],
        "queued": result.queued,
        "event": result.event.id,
        "notes": list(result.decision.notes),
    }
    if args.format == "json":
        _print_json(document)
        return 0
    if args.shadow:
        print(f"shadow: would shift {request.zone} and move {len(result.decision.moves)} primary(ies); nothing changed")
    else:
        assert result.shift is not None
        print(
            f"shifted {request.zone} until {result.shift.expires_ts.isoformat(timespec='seconds')}: "
            f"{result.queued} switchover(s) queued for the runner"
        )
    for move in result.decision.moves:
        print(f"  {move.dependency}: primary {move.instance}")
    for note in result.decision.notes:
        print(f"  note: {note}")
    return 0


def _status(args: argparse.Namespace) -> int:
    with open_store(args.store or default_store_url(), create=False) as store:
        rows = status(store, utcnow())
    if args.format == "json":
        _print_json(rows)
    elif not rows:
        print("no zone is shifted")
    else:
        sys.stdout.write(_table(rows))
    return 0


def _end(args: argparse.Namespace) -> int:
    hold_s = _seconds(args.failback_hold, "--failback-hold") if args.failback_hold not in ("0", "0s") else 0.0
    who = _who(args)
    reason = args.reason or f"ended by {who}"
    problem = check_text(reason, "reason", 500)
    if problem:
        raise ConfigError("command line", "--reason", problem)
    with open_store(args.store or default_store_url(), create=False) as store:
        now = utcnow()
        ended = end_shift(
            store, args.zone, now=now, end_reason=reason, ended_by=who, failback=True, failback_hold_s=hold_s
        )
    if ended is None:
        raise ConfigError(
            "command line", "ZONE", f"{args.zone[:60]!r} has no shift in force", "see `depmirror zone status`"
        )
    if args.format == "json":
        _print_json(
            {
                "shift": ended.shift.as_dict(),
                "failbacks_queued": ended.queued,
                "moved": [{"dependency": m.dependency, "instance": m.instance} for m in ended.moves],
            }
        )
        return 0
    print(f"ended the shift of {ended.shift.zone}: {ended.queued} failback(s) queued for the runner")
    return 0


def _print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return "-"
    if column.endswith("_ts"):
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S")
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _table(rows: list[dict[str, Any]]) -> str:
    cells = [[c.upper() for c in STATUS_COLUMNS]] + [[_cell(row, c) for c in STATUS_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(STATUS_COLUMNS))]
    return "".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n" for line in cells)
