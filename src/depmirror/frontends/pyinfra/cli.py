"""`depmirror pyinfra adjust|rollback|failback`: the pyinfra frontend's commands (docs/pyinfra.md).

Runs as `python -m depmirror.frontends.pyinfra` (`depmirror pyinfra` hands over to it), so that gevent
patches the standard library before anything opens a socket; pyinfra runs hosts in parallel through it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from depmirror.errors import ConfigError, DepmirrorError
from depmirror.frontends.pyinfra.adjust import AdjustReport, adjust
from depmirror.frontends.pyinfra.collection import Collection, find_collection
from depmirror.frontends.pyinfra.engine import PhaseOptions
from depmirror.frontends.pyinfra.inventory import Connection
from depmirror.frontends.pyinfra.source import read_source
from depmirror.frontends.pyinfra.switch import FailbackArgs, RollbackArgs, SwitchReport, failback, rollback
from depmirror.rollback.remote import SshOptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depmirror pyinfra",
        description="Adjust, roll back and fail back the fleet with pyinfra instead of ansible-playbook: the same "
        "plan, decisions, templates and records (docs/pyinfra.md).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    run = actions.add_parser("adjust", help="playbooks/adjust.yml: provision, route, decommission, record")
    _common(run)
    run.add_argument("--dry-run", action="store_true", help="report what would change and change nothing")
    run.add_argument(
        "--limit",
        action="append",
        metavar="HOST[,HOST...]",
        help="only these hosts or groups, as adjust.yml --limit: the plan stays the fleet's, the run applies and "
        "records the part they get, and what waits for other hosts is listed (repeatable)",
    )
    run.set_defaults(func=_adjust)

    back = actions.add_parser("rollback", help="playbooks/rollback.yml: switch a dependency to a healthy mirror")
    _common(back)
    _switch(back)
    back.add_argument("--failed-instance", required=True, metavar="HOST", help="host or dependency@host")
    back.add_argument("--candidate", action="append", default=[], metavar="HOST", help="only these may take over")
    back.add_argument("--max-lag-bytes", type=int, default=0, help="Redis: how far behind a target may be")
    back.add_argument("--fence-timeout", type=float, default=3.0, help="seconds for stopping the failed instance")
    back.set_defaults(func=_rollback)

    fail = actions.add_parser("failback", help="playbooks/failback.yml: bring a recovered instance back")
    _common(fail)
    _switch(fail)
    fail.add_argument("--recovered-instance", required=True, metavar="HOST", help="host or dependency@host")
    fail.add_argument("--hold-seconds", type=float, default=300.0, help="wait this long after its rollback")
    fail.add_argument("--move-primary-back", action="store_true", help="hand the primary role back to it")
    fail.set_defaults(func=_failback)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-i", "--inventory", required=True, metavar="FILE", help="the *.depmirror.yml the inventory plugin reads"
    )
    parser.add_argument("--collection", metavar="DIR", help="the collection's root (default: the one around this)")
    parser.add_argument("--ssh-user", default="root", help="SSH user (default root)")
    parser.add_argument("--ssh-key", metavar="FILE", help="SSH private key")
    parser.add_argument("--known-hosts", metavar="FILE", help="known_hosts file; host keys are always checked")
    parser.add_argument("--ssh-port", type=int, default=22)
    parser.add_argument("--become", action="store_true", help="run commands with sudo (a non-root SSH user)")
    parser.add_argument("--connect-timeout", type=int, default=5, help="seconds to connect to each host")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _switch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dependency", required=True)
    parser.add_argument("--trigger", default='{"type": "user"}', help="JSON recorded as the event's trigger")
    parser.add_argument("--action-id", default="", help="recorded in the event's details")
    parser.add_argument("--health-interval", type=float, default=5.0, help="Prometheus evaluation interval (s)")
    parser.add_argument("--verify-requests", type=int, default=10)
    parser.add_argument("--verify-deadline", type=float, default=3.0)


def _context(args: argparse.Namespace) -> tuple[Any, Collection, Connection, PhaseOptions]:
    if not 1 <= args.connect_timeout <= 120:
        raise ConfigError("--connect-timeout", "", f"is {args.connect_timeout}", "seconds from 1 to 120")
    source = read_source(args.inventory)
    collection = Collection(find_collection(args.collection))
    ssh = SshOptions(
        user=args.ssh_user,
        key_file=args.ssh_key,
        known_hosts=args.known_hosts,
        port=args.ssh_port,
        connect_timeout_s=float(args.connect_timeout),
        become=args.become,
    )
    options = PhaseOptions(connect_timeout=args.connect_timeout, dry_run=getattr(args, "dry_run", False))
    return source, collection, Connection(ssh), options


def limit_names(values: list[str] | None) -> list[str] | None:
    """`--limit a,b --limit c` as names; None without the option."""
    if values is None:
        return None
    names = [name.strip() for value in values for name in value.split(",")]
    if not all(names):
        raise ConfigError("--limit", "", "has an empty name", "name hosts or groups, comma-separated: vm-a1,lb1")
    return names


def _adjust(args: argparse.Namespace) -> int:
    limit = limit_names(args.limit)
    source, collection, connection, options = _context(args)
    report = adjust(source, collection, connection, options, limit=limit)
    _print(args, report)
    return 0


def _trigger(args: argparse.Namespace) -> dict[str, Any]:
    try:
        trigger = json.loads(args.trigger)
    except json.JSONDecodeError as error:
        raise ConfigError(
            "--trigger", "", f"is not JSON ({error.msg})", 'pass an object like {"type": "user"}'
        ) from None
    if not isinstance(trigger, dict):
        raise ConfigError("--trigger", "", "is not a JSON object", 'pass an object like {"type": "user"}')
    return trigger


def _rollback(args: argparse.Namespace) -> int:
    source, collection, connection, options = _context(args)
    report = rollback(
        source,
        collection,
        connection,
        options,
        RollbackArgs(
            dependency=args.dependency,
            failed_instance=args.failed_instance,
            candidates=tuple(args.candidate),
            trigger=_trigger(args),
            action_id=args.action_id,
            health_interval=args.health_interval,
            max_lag=args.max_lag_bytes,
            verify_requests=args.verify_requests,
            verify_deadline=args.verify_deadline,
            fence_timeout=args.fence_timeout,
        ),
    )
    _print(args, report)
    return 0


def _failback(args: argparse.Namespace) -> int:
    source, collection, connection, options = _context(args)
    report = failback(
        source,
        collection,
        connection,
        options,
        FailbackArgs(
            dependency=args.dependency,
            recovered_instance=args.recovered_instance,
            trigger=_trigger(args),
            action_id=args.action_id,
            health_interval=args.health_interval,
            hold_seconds=args.hold_seconds,
            move_primary_back=args.move_primary_back,
            verify_requests=args.verify_requests,
            verify_deadline=args.verify_deadline,
        ),
    )
    _print(args, report)
    return 0


def _print(args: argparse.Namespace, report: AdjustReport | SwitchReport) -> None:
    document = report.to_dict()
    if args.json:
        print(json.dumps(document, indent=2, default=str))
        return
    for warning in document.get("warnings", []):
        print(f"depmirror: warning: {warning}", file=sys.stderr)
    for phase in document["phases"]:
        changed = len(phase["changed"])
        print(f"{phase['phase']}: {phase['operations']} operations, {changed} changed ({phase['seconds']} s)")
        for op in phase["changed"]:
            print(f"  changed: {op['host']}: {op['operation']}")
    if "event" in document:
        print(f"event: {document['event']}")
    print(f"changed={document['changed']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except DepmirrorError as error:
        print(f"depmirror: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result
