"""Faults a VM fleet meets, for one host or a whole zone, and their repair.

- stop: the host is down but its address answers, so connections are refused (podman stop);
- pause: the host hangs, so connections open and then nothing answers (podman pause, cgroup freezer);
- cut: the host's cable is pulled, so nothing answers at all (the controller-side veth set down).
"""

from __future__ import annotations

from depmirror_lab import containers, network
from depmirror_lab.lifecycle import lab_lock
from depmirror_lab.paths import LabPaths
from depmirror_lab.probe import wait_ssh
from depmirror_lab.shape import LabHost, resolve_target
from depmirror_lab.system import LabError, require_binaries, require_root

FAULTS = ("stop", "pause", "cut")
RESTORE_TIMEOUT_S = 60.0


def fault(paths: LabPaths, kind: str, target: str) -> list[LabHost]:
    """Apply the fault to the host or zone named by target; the hosts it hit."""
    if kind not in FAULTS:
        raise LabError(f"unknown fault {kind!r} (one of: {', '.join(FAULTS)})")
    require_root("fault")
    require_binaries(["podman", "ip"])
    hosts = resolve_target(target)
    with lab_lock(paths):
        states = containers.states(paths)
        missing = [h.name for h in hosts if h.container not in states]
        if missing:
            raise LabError(f"no lab container for {', '.join(missing)} (fix: depmirror lab up)")
        if kind == "cut":
            for host in hosts:
                network.set_cable(host, up=False)
        elif kind == "stop":
            containers.act(paths, "stop", [h.container for h in hosts if states[h.container] != "exited"])
        else:
            containers.act(paths, "pause", [h.container for h in hosts if states[h.container] == "running"])
    return hosts


def restore(paths: LabPaths, target: str = "all") -> list[LabHost]:
    """Undo every fault on the target's hosts and wait until their sshd answers again."""
    require_root("restore")
    require_binaries(["podman", "ip"])
    hosts = resolve_target(target)
    with lab_lock(paths):
        states = containers.states(paths)
        missing = [h.name for h in hosts if h.container not in states]
        if missing:
            raise LabError(f"no lab container for {', '.join(missing)} (fix: depmirror lab up)")
        for host in hosts:
            network.set_cable(host, up=True)
        containers.act(paths, "unpause", [h.container for h in hosts if states[h.container] == "paused"])
        stopped = [h.container for h in hosts if states[h.container] not in ("running", "paused")]
        containers.act(paths, "start", stopped)
        wait_ssh(hosts, timeout=RESTORE_TIMEOUT_S)
    return hosts
