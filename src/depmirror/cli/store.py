"""`depmirror store check|migrate`: what a store holds, and moving it to another backend (docs/history.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from depmirror.store import open_store
from depmirror.store.copy import copy_store
from depmirror.store.factory import default_store_url


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "store",
        help="check a state store, or copy one into another (SQLite -> PostgreSQL)",
        description="The state store: what it holds, whether it takes writes, and copying it to a new backend.",
    )
    actions = parser.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="backend, schema version, row counts, and whether it takes a write")
    check.add_argument("url", nargs="?", help="store URL or path (default: $DEPMIRROR_STORE, else ./depmirror.db)")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.set_defaults(func=_check)
    migrate = actions.add_parser(
        "migrate",
        help="copy a store into a new, empty one and verify it (every runner stopped first)",
        description="Copies the history (ids and times kept), the applied plan, the primaries and the RF "
        "changes, then compares every count and event. Refuses while alerts wait or actions run in the "
        "source, or when the target is not empty. Passwords come from PGPASSFILE/PGPASSWORD, not the URL.",
    )
    migrate.add_argument(
        "--from",
        dest="source",
        required=True,
        help="the store to copy (e.g. sqlite:////var/lib/depmirror/depmirror.db)",
    )
    migrate.add_argument(
        "--to", dest="target", required=True, help="the new store (e.g. postgresql://depmirror@db:5432/depmirror)"
    )
    migrate.set_defaults(func=_migrate)


def _check(args: argparse.Namespace) -> int:
    with open_store(args.url or default_store_url(), create=False) as store:
        report = store.stats()
        store.check_writable()
    report["writable"] = True
    if args.format == "json":
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        for key in sorted(report):
            print(f"{key}: {report[key]}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    with open_store(args.source, create=False) as source, open_store(args.target) as target:
        report = copy_store(source, target)
        shown_source, shown_target = source.url, target.url
    counts = ", ".join(f"{n} {name}" for name, n in report.counts.items())
    print(f"copied {shown_source} -> {shown_target}: {counts}; every count and event verified")
    skipped = report.not_copied["alerts_decided"]
    if skipped:
        print(f"not copied: {skipped} decided alerts (the queue's dedup and flap memory; it refills in minutes)")
    return 0
