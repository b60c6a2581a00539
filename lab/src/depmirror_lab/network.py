"""The lab's wiring: bridge labbr0 on the controller and one network namespace per host, joined by a veth.

The namespaces have no default route, and the controller never forwards (ip_forward stays as it was), so
lab hosts reach each other and the controller's 198.18.0.1, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path

from depmirror_lab.shape import BRIDGE, CONTROLLER_ADDRESS, PREFIX_LENGTH, LabHost
from depmirror_lab.system import run

NETNS_DIR = Path("/run/netns")
NETNS_ETC = Path("/etc/netns")


def link_exists(name: str, netns: str | None = None) -> bool:
    argv = ["ip", *(["-n", netns] if netns else []), "link", "show", "dev", name]
    return run(argv, check=False).returncode == 0


def link_is_up(name: str) -> bool | None:
    """Whether the link is administratively up; None when it does not exist."""
    result = run(["ip", "-j", "link", "show", "dev", name], check=False)
    if result.returncode != 0:
        return None
    flags: list[str] = json.loads(result.stdout)[0].get("flags", [])
    return "UP" in flags


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def ensure_bridge() -> None:
    if not link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    address = f"{CONTROLLER_ADDRESS}/{PREFIX_LENGTH}"
    shown = run(["ip", "-j", "addr", "show", "dev", BRIDGE]).stdout
    if f'"{CONTROLLER_ADDRESS}"' not in shown:
        run(["ip", "addr", "add", address, "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def ensure_host_network(host: LabHost) -> None:
    """The host's namespace, cable to the bridge and address; repairs whatever part is missing."""
    if not netns_exists(host.netns):
        # A stale veth from an earlier namespace would make the new one fail with "File exists".
        if link_exists(host.veth):
            run(["ip", "link", "del", host.veth])
        run(["ip", "netns", "add", host.netns])
    if not link_exists(host.veth):
        if link_exists("eth0", host.netns):
            run(["ip", "-n", host.netns, "link", "del", "eth0"])
        run(
            ["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0",
             "address", host.mac, "netns", host.netns]
        )  # fmt: skip
        # An entry learnt before a crash may still name an older MAC address.
        run(["ip", "neigh", "flush", "to", host.address, "dev", BRIDGE], check=False)
    run(["ip", "link", "set", host.veth, "master", BRIDGE, "up"])
    shown = run(["ip", "-n", host.netns, "-j", "addr", "show", "dev", "eth0"]).stdout
    if f'"{host.address}"' not in shown:
        run(["ip", "-n", host.netns, "addr", "add", f"{host.address}/{PREFIX_LENGTH}", "dev", "eth0"])
    run(["ip", "-n", host.netns, "link", "set", "lo", "up"])
    run(["ip", "-n", host.netns, "link", "set", "eth0", "up"])
    # Tools run with `ip netns exec` would otherwise ask the controller's (outside) nameserver and block.
    etc = NETNS_ETC / host.netns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")


def set_cable(host: LabHost, up: bool) -> None:
    run(["ip", "link", "set", host.veth, "up" if up else "down"])


def remove_host_network(host: LabHost) -> None:
    """Remove the namespace and its veth; parts already gone are skipped."""
    if netns_exists(host.netns):
        # `ip netns del` only drops the name while processes still hold the namespace.
        pids = run(["ip", "netns", "pids", host.netns], check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    if link_exists(host.veth):
        run(["ip", "link", "del", host.veth], check=False)
    if netns_exists(host.netns):
        run(["ip", "netns", "del", host.netns], check=False)
    shutil.rmtree(NETNS_ETC / host.netns, ignore_errors=True)


def remove_bridge() -> None:
    if link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE], check=False)
