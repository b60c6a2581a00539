"""`depmirror lab up|down|status|fault|restore|build`: the lab of VM-like hosts the tests run on."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from depmirror import lab


def register(subparsers: Any) -> None:
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

    build = actions.add_parser("build", help="build the lab image (debootstrap + podman)")
    build.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    build.set_defaults(func=_build)


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
