"""`lab up`, `lab down` and `lab status`: the whole lab brought to a state, from whatever state it is in.

Both directions are idempotent and repair partial states (a crashed run, a container removed by hand),
so pytest fixtures and benchmarks can call them unconditionally.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from depmirror_lab import containers, daemons, inventory, network
from depmirror_lab.image import build_image, image_is_current, remove_images
from depmirror_lab.keys import ensure_keys
from depmirror_lab.paths import LabPaths
from depmirror_lab.probe import probe_ssh, wait_ssh
from depmirror_lab.shape import HOSTS, LabHost
from depmirror_lab.system import LabError, require_binaries, require_root

LOCK_TIMEOUT_S = 300.0
SSH_READY_TIMEOUT_S = 60.0
UP_BINARIES = ("podman", "runc", "ip", "ssh-keygen")


@dataclass
class UpReport:
    built_image: bool
    created: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class DownReport:
    removed_containers: list[str] = field(default_factory=list)
    removed_namespaces: list[str] = field(default_factory=list)
    stopped_processes: list[str] = field(default_factory=list)
    removed_images: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class HostStatus:
    name: str
    zone: str | None
    address: str
    container: str  # podman's state, or "missing"
    cable: str  # "up", "down" (cut off) or "missing"
    ssh: str  # probe.OK / REFUSED / HUNG / UNREACHABLE


@contextmanager
def lab_lock(paths: LabPaths) -> Iterator[None]:
    """One lab command at a time on this machine: parallel test sessions share the one lab."""
    paths.state.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "w") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    held = f"another lab command held {paths.lock} for {LOCK_TIMEOUT_S:.0f} s"
                    raise LabError(held) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def up(paths: LabPaths, *, rebuild: bool = False) -> UpReport:
    """Build the image if needed, then make every host run, wired and reachable over SSH."""
    require_root("up")
    require_binaries(UP_BINARIES)
    started = time.monotonic()
    with lab_lock(paths):
        report = UpReport(built_image=False)
        if rebuild or not image_is_current(paths):
            # Hosts from an older image would silently keep running it.
            containers.act(paths, "rm", sorted(containers.states(paths)))
            report.built_image = build_image(paths, force=rebuild)
        ensure_keys(paths)
        network.ensure_bridge()
        states = containers.states(paths)
        for host in HOSTS:
            _ensure_host(paths, host, states, report)
        wait_ssh(HOSTS, timeout=SSH_READY_TIMEOUT_S)
        inventory.write(paths)
    report.seconds = time.monotonic() - started
    return report


def _ensure_host(paths: LabPaths, host: LabHost, states: dict[str, str], report: UpReport) -> None:
    state = states.get(host.container)
    if state is not None and not network.netns_exists(host.netns):
        # Its namespace was deleted under it: the container has no network left to repair.
        containers.act(paths, "rm", [host.container])
        state = None
    network.ensure_host_network(host)
    if state is None:
        containers.run_container(paths, host)
        report.created.append(host.name)
    elif state == "paused":
        containers.act(paths, "unpause", [host.container])
        report.repaired.append(host.name)
    elif state != "running":
        containers.act(paths, "start", [host.container])
        report.repaired.append(host.name)


def down(paths: LabPaths, *, image: bool = False) -> DownReport:
    """Remove every container, namespace, veth, the bridge and every process the lab started."""
    require_root("down")
    require_binaries(["ip"] + (["podman"] if image else []))
    started = time.monotonic()
    report = DownReport()
    with lab_lock(paths):
        report.stopped_processes = daemons.stop_all(paths)
        if _have_podman():
            names = sorted(set(containers.states(paths)))
            containers.act(paths, "rm", names)
            report.removed_containers = names
        for host in HOSTS:
            if network.netns_exists(host.netns):
                report.removed_namespaces.append(host.netns)
            network.remove_host_network(host)
        network.remove_bridge()
        _remove_empty_dir(network.NETNS_ETC)
        inventory.remove(paths)
        if image:
            report.removed_images = remove_images(paths)
    report.seconds = time.monotonic() - started
    return report


def _have_podman() -> bool:
    try:
        require_binaries(["podman"])
    except LabError:
        return False
    return True


def _remove_empty_dir(path: Path) -> None:
    with suppress(OSError):
        path.rmdir()


def status(paths: LabPaths) -> list[HostStatus]:
    """What each host looks like now: container state, cable, and what sshd answers."""
    require_root("status")
    require_binaries(["podman", "ip"])
    states = containers.states(paths)
    # Probes of hung or cut-off hosts each wait their full timeout: wait for them side by side.
    with ThreadPoolExecutor(max_workers=len(HOSTS)) as pool:
        answers = list(pool.map(lambda h: probe_ssh(h.address, timeout=1.0), HOSTS))
    result = []
    for host, answer in zip(HOSTS, answers, strict=True):
        cable = network.link_is_up(host.veth)
        result.append(
            HostStatus(
                name=host.name,
                zone=host.zone,
                address=host.address,
                container=states.get(host.container, "missing"),
                cable="missing" if cable is None else ("up" if cable else "down"),
                ssh=answer,
            )
        )
    return result
