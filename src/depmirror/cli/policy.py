"""`depmirror policy set|show|clear`: run-time overrides with who, why and an expiry (docs/runner.md,
"Overrides"). They go to the store directly: the planner and every runner sharing it read them from there."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from depmirror.errors import ConfigError
from depmirror.fleet.override_store import active_policies, clear_policy, known_dependencies, set_policy
from depmirror.fleet.overrides import ROLLBACK_MODES, OverrideError
from depmirror.graph.load import load_graph
from depmirror.store import Override, default_store_url
from depmirror.store.model import utcnow


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "policy",
        help="set, show or clear run-time overrides (RF bounds, health threshold, rollback mode)",
        description="Run-time policy overrides, each with a reason and an expiry (at most 30 days).",
    )
    actions = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", default=None, help="store path or URL (default: $DEPMIRROR_STORE)")
    set_ = actions.add_parser("set", parents=[common], help="set the override of DEP (or '*'), replacing its own")
    set_.add_argument("dependency", metavar="DEP")
    set_.add_argument("--rf-min", type=int, help="minimum replication factor")
    set_.add_argument("--rf-max", type=int, help="maximum replication factor")
    set_.add_argument("--unhealthy", type=float, help="health score below which an instance is unhealthy (0..1)")
    set_.add_argument("--rollback", choices=ROLLBACK_MODES, help="auto, manual, shadow or frozen")
    set_.add_argument("--expires-in", required=True, help="how long it lasts: 30m, 2h, 7d (at most 30d)")
    set_.add_argument("--reason", required=True, help="why, for whoever reads the history")
    set_.add_argument("--graph", help="graph file: the dependencies that exist (default: the applied plan's)")
    set_.add_argument("--by", default=None, help="who sets it (default: $USER)")
    set_.add_argument("--format", choices=("text", "json"), default="text")
    set_.set_defaults(func=_set)
    show = actions.add_parser("show", parents=[common], help="the overrides in force")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(func=_show)
    clear = actions.add_parser("clear", parents=[common], help="end the override of DEP (or '*') now")
    clear.add_argument("dependency", metavar="DEP")
    clear.add_argument("--reason", default="cleared", help="why it ends")
    clear.add_argument("--by", default=None, help="who ends it (default: $USER)")
    clear.set_defaults(func=_clear)


def _who(given: str | None) -> str:
    if given:
        return given
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


def _set(args: argparse.Namespace) -> int:
    store = args.store or default_store_url()
    graph_names = list(load_graph(args.graph).dependencies) if args.graph else None
    request = {
        "rf_min": args.rf_min,
        "rf_max": args.rf_max,
        "unhealthy": args.unhealthy,
        "rollback": args.rollback,
        "expires_in": args.expires_in,
        "reason": args.reason,
    }
    try:
        change = set_policy(
            store,
            args.dependency,
            {k: v for k, v in request.items() if v is not None},
            known=known_dependencies(store, graph_names),
            created_by=_who(args.by),
            now=utcnow(),
        )
    except OverrideError as error:
        flag = "--" + error.field.replace("_", "-")
        fix = ""
        if error.field == "body":
            flag = "--rf-min/--rf-max/--unhealthy/--rollback"
        elif error.field == "dependency":
            flag, fix = "DEP", "name one the graph has (--graph FILE), or '*'"
        raise ConfigError("command line", flag, error.problem, fix) from error
    assert change.after is not None
    if args.format == "json":
        print(json.dumps({"changed": change.changed, "override": change.after.as_dict()}, indent=2))
    else:
        verb = "set" if change.changed else "unchanged (the same override is in force)"
        print(f"{verb}: {_line(change.after)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    active = active_policies(args.store or default_store_url(), utcnow())
    if args.format == "json":
        print(json.dumps([o.as_dict() for o in active], indent=2))
    elif not active:
        print("no override in force")
    else:
        for override in active:
            print(_line(override))
    return 0


def _clear(args: argparse.Namespace) -> int:
    change = clear_policy(
        args.store or default_store_url(), args.dependency, by=_who(args.by), reason=args.reason, now=utcnow()
    )
    if not change.changed:
        print(f"{args.dependency}: no override in force", file=sys.stderr)
        return 1
    assert change.before is not None
    print(f"cleared: {_line(change.before)}")
    return 0


def _line(override: Override) -> str:
    settings = ", ".join(
        f"{name}={getattr(override, name)}"
        for name in ("rf_min", "rf_max", "unhealthy", "rollback")
        if getattr(override, name) is not None
    )
    return (
        f"#{override.id} {override.dependency}: {settings} until {override.expires_ts:%Y-%m-%d %H:%M:%S} UTC "
        f"by {override.created_by}: {override.reason}"
    )
