"""`depmirror lab up|down|status|fault|restore|build`: the lab of VM-like hosts the tests run on."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from depmirror.errors import DepmirrorError
from depmirror.graph.load import load_graph

try:
    import depmirror_lab as lab
    from depmirror_lab import failover, watch
except ImportError:  # the lab is a development extra (lab/ in a checkout), not part of the package
    lab = None  # type: ignore[assignment]

LAB_MISSING = (
    "depmirror lab needs the lab, a development extra that only a checkout has "
    "(fix: in the checkout, run `make setup`, or `pip install -e lab/`)"
)


def register(subparsers: Any) -> None:
    if lab is None:
        missing = subparsers.add_parser("lab", help="the test lab (not installed: a development extra)")
        missing.set_defaults(func=_missing)
        return
    parser = subparsers.add_parser(
        "lab",
        help="run the lab: VM-like hosts in zones (root, podman)",
        description="The lab: rootful podman hosts with systemd and sshd, one network namespace each, "
        "on bridge labbr0 (198.18.0.1/24). Writes inventories/lab/hosts.yml.",
    )
    actions = parser.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    up = actions.add_parser("up", help="build the image if needed and start every host (idempotent)")
    up.add_argument("--rebuild", action="store_true", help="rebuild the image and recreate every host")
    up.set_defaults(func=_up)

    down = actions.add_parser("down", help="remove every host, namespace, the bridge and started processes")
    down.add_argument("--image", action="store_true", help="also remove the lab's images")
    down.set_defaults(func=_down)

    status = actions.add_parser("status", help="each host's container, cable and what sshd answers")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(func=_status)

    fault = actions.add_parser("fault", help="stop (refused), pause (hung) or cut off a host or a zone")
    fault.add_argument("kind", choices=lab.FAULTS)
    fault.add_argument("target", help="a host (vm-a1), a zone (zone-a) or all")
    fault.set_defaults(func=_fault)

    restore = actions.add_parser("restore", help="undo every fault on a host, a zone or all (default)")
    restore.add_argument("target", nargs="?", default="all")
    restore.set_defaults(func=_restore)

    watch = actions.add_parser(
        "watch",
        help="start the watchers: blackbox, Prometheus, Alertmanager and the runner (fast path)",
        description="Prometheus (scrape and evaluation every --interval) with depmirror's alert rules, "
        "Alertmanager (group_wait 0 s) and `depmirror serve` for the fleet that adjust.yml applied with --store. "
        "Stopped by `depmirror lab watch --stop` or `depmirror lab down`.",
    )
    watch.add_argument("--graph", help="the graph file the fleet was adjusted with")
    watch.add_argument("--store", help="the state store adjust.yml recorded into (path or URL)")
    watch.add_argument(
        "--inventory",
        "-i",
        action="append",
        default=[],
        help="the inventories the runner's playbooks use (repeat; the lab's and the fleet's)",
    )
    watch.add_argument("--interval", type=float, default=1.0, help="scrape and evaluation interval, seconds")
    watch.add_argument("--cooldown", type=float, default=10.0, help="the runner's cooldown per dependency, s")
    watch.add_argument(
        "--alertmanagers",
        type=int,
        choices=(1, 2),
        default=1,
        help="2: two Alertmanagers in a cluster (--cluster.peer), both alerted and both sending to the runner",
    )
    watch.add_argument("--stop", action="store_true", help="stop the watchers instead")
    watch.set_defaults(func=_watch)

    failover = actions.add_parser(
        "failover",
        help="fault a dependency's primary and time the automatic switchover",
        description="Needs `depmirror lab watch`. Faults the primary (kill: SIGKILL kept down; hang: SIGSTOP; "
        "cut: the VM's cable), runs a client loop through the LB, waits for the runner's event and prints the "
        "times, the client's failed requests and each step of the chain (probe failed in Prometheus, alert "
        "firing, Alertmanager flushed it, webhook received, action started, switched); for a fault that did not "
        "switch or switched over 3 s, the runner's decisions with their reasons and the watchers' log lines. "
        "Exit 1 when nothing switched. The fault stays (`depmirror lab restore` undoes a cut).",
    )
    failover.add_argument("kind", choices=("kill", "hang", "cut"))
    failover.add_argument("dependency")
    failover.add_argument("--lb", default="198.18.0.2", help="the load balancer's address (default lb1)")
    failover.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the switch")
    failover.add_argument("--json", action="store_true", help="print JSON")
    failover.set_defaults(func=_failover)

    build = actions.add_parser("build", help="build the lab image (debootstrap + podman)")
    build.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    build.set_defaults(func=_build)


def _missing(args: argparse.Namespace) -> int:
    raise DepmirrorError(LAB_MISSING)


def _up(args: argparse.Namespace) -> int:
    report = lab.up(lab.lab_paths(), rebuild=args.rebuild)
    image = "built the image, " if report.built_image else ""
    changed = f"created {len(report.created)}, repaired {len(report.repaired)}"
    print(f"lab up: {image}{changed}, {len(lab.HOSTS)} hosts answering SSH ({report.seconds:.1f} s)")
    return 0


def _down(args: argparse.Namespace) -> int:
    report = lab.down(lab.lab_paths(), image=args.image)
    print(
        f"lab down: removed {len(report.removed_containers)} containers, "
        f"{len(report.removed_namespaces)} namespaces, {len(report.stopped_processes)} processes"
        + (f", images {', '.join(report.removed_images)}" if report.removed_images else "")
        + f" ({report.seconds:.1f} s)"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    hosts = lab.status(lab.lab_paths())
    healthy = all(h.ssh == lab.OK for h in hosts)
    if args.json:
        print(json.dumps([asdict(h) for h in hosts], indent=2))
        return 0 if healthy else 1
    print(f"{'host':8} {'zone':8} {'address':13} {'container':10} {'cable':8} ssh")
    for h in hosts:
        print(f"{h.name:8} {h.zone or '-':8} {h.address:13} {h.container:10} {h.cable:8} {h.ssh}")
    return 0 if healthy else 1


def _fault(args: argparse.Namespace) -> int:
    hosts = lab.fault(lab.lab_paths(), args.kind, args.target)
    print(f"lab fault: {args.kind} {', '.join(h.name for h in hosts)}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    hosts = lab.restore(lab.lab_paths(), args.target)
    print(f"lab restore: {', '.join(h.name for h in hosts)} answering SSH")
    return 0


def _build(args: argparse.Namespace) -> int:
    built = lab.build_image(lab.lab_paths(), force=args.force)
    print("lab build: image built" if built else "lab build: image exists (use --force to rebuild)")
    return 0


def _watch(args: argparse.Namespace) -> int:
    paths = lab.lab_paths()
    if args.stop:
        stopped = watch.stop(paths)
        print(f"lab watch: stopped {', '.join(stopped) or 'nothing'}")
        return 0
    if not args.graph or not args.store or not args.inventory:
        raise lab.LabError("lab watch needs --graph, --store and at least one --inventory (or --stop)")
    store = args.store if "://" in args.store or args.store.startswith("sqlite:") else str(Path(args.store).resolve())
    watched = watch.start(
        paths,
        watch.WatchSettings(
            graph=Path(args.graph),
            store=store,
            inventories=tuple(Path(i) for i in args.inventory),
            collection=paths.root,
            interval_s=args.interval,
            cooldown_s=args.cooldown,
            alertmanagers=args.alertmanagers,
        ),
    )
    print(
        f"lab watch: Prometheus {watched.prometheus_url}, Alertmanager {' '.join(watched.alertmanager_urls)}, "
        f"runner {watched.runner_url} (logs in {watched.dir / 'logs'})"
    )
    return 0


def _failover(args: argparse.Namespace) -> int:
    paths = lab.lab_paths()
    watched = watch.load(paths)
    graph = load_graph(watched.graph)
    if args.dependency not in graph.dependencies:
        raise lab.LabError(f"{args.dependency!r} is not in {watched.graph} (one of: {', '.join(graph.dependencies)})")
    port = graph.dependencies[args.dependency].port
    # Start from a settled state: a fault while Prometheus still warms up would time the warm-up too.
    failover.wait_healthy(watched, {(d, h) for d, h, _ in watched.instances if d == args.dependency}, 60)
    result = failover.fault_and_wait(
        paths, watched, args.kind, args.dependency, (args.lb, port), timeout_s=args.timeout
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(
            f"{args.kind} {args.dependency}@{result.failed}: {result.event_kind} {result.outcome}"
            f"{' to ' + result.target if result.target else ''}"
        )
        print(f"  fault -> switched   {result.fault_to_switched_s} s")
        print(f"  webhook -> switched {result.webhook_to_switched_s} s  {result.timings}")
        print(f"  client through {args.lb}:{port}: {result.requests} requests, {len(result.client_errors)} failed")
        _print_chain(result)
    return 1 if result.failed_fault else 0


def _print_chain(result: Any) -> None:
    """Each step of the chain, seconds after the fault; for a failed or slow fault, the decisions and logs."""
    at = result.chain.get("at", {})
    print("  chain (s after the fault): " + ", ".join(f"{step} {at.get(step)}" for step in at if step != "fault"))
    if result.chain.get("broke_at"):
        print(f"  broke at: {result.chain['broke_at']}")
    if not (result.failed_fault or result.slow):
        return
    for decision in result.chain.get("decisions", []):
        print(f"  decision +{decision['at']}s: {decision['kind']} {decision['outcome']}: {decision['reason']}")
    for name, lines in result.chain.get("logs", {}).items():
        for line in lines[-10:]:
            print(f"  {name}: {line}")
