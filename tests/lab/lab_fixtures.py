"""Fixtures for tests on the lab: brought up once per session, always torn down, checked to leave nothing.

Tests that need the lab take `lab_up` (a LabPaths: `.inventory`, `.root`, ...); it skips, rather than
fails, where the lab cannot run at all (not root, no podman). Shared with tests/integration and tests/e2e
when tests/conftest.py says `pytest_plugins = ["tests.lab.lab_fixtures"]`; tests/lab/conftest.py loads
this module itself until then.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import depmirror_lab as lab
import pytest

ANSIBLE = Path(sys.executable).parent / "ansible"


def machine_snapshot() -> dict[str, Any]:
    """What the lab must leave as it found it: namespaces, containers, links, forwarding, firewall."""

    def lines(argv: list[str]) -> list[str]:
        return sorted(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines())

    env = dict(os.environ, CONTAINERS_CONF=str(lab.lab_paths().containers_conf))
    containers = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    firewall = lines(["iptables-save"]) if shutil.which("iptables-save") else []
    return {
        "netns": lines(["ip", "netns", "list"]),
        # Molecule's scenarios run their own containers in parallel with the lab group; they are not the lab's.
        "containers": sorted(c for c in containers if not c.startswith("molecule-")),
        "links": sorted(re.split(r"[:@]", line)[1].strip() for line in lines(["ip", "-o", "link", "show"])),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        # Chain counters change with traffic; the rules must not.
        "iptables": [re.sub(r"\[\d+:\d+\]", "", line) for line in firewall if not line.startswith("#")],
    }


@pytest.fixture(scope="session")
def lab_paths() -> lab.LabPaths:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    if shutil.which("podman") is None or shutil.which("ip") is None:
        pytest.skip("the lab needs podman and iproute2")
    return lab.lab_paths()


LAB_LOCK = Path("/tmp/depmirror-lab.lock")
LOCK_WAIT_S = 1800.0


@contextlib.contextmanager
def exclusive_lab() -> Iterator[None]:
    """One test session at a time on this machine's lab: others wait here (the lab has fixed addresses).

    The wait blocks in flock(2), like `flock /tmp/depmirror-lab.lock CMD` does: a poll with LOCK_NB lost the
    lock every time to blocking waiters (bench runs back to back), and starved for its whole timeout.
    """

    def give_up(signum: int, frame: object) -> None:
        raise TimeoutError(f"{LAB_LOCK} held for {LOCK_WAIT_S:.0f} s by another session")

    with open(LAB_LOCK, "a") as handle:
        previous = signal.signal(signal.SIGALRM, give_up)
        signal.alarm(int(LOCK_WAIT_S))
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def lab_lock(lab_paths: lab.LabPaths) -> Iterator[None]:
    with exclusive_lab():
        yield


@pytest.fixture(scope="session")
def lab_machine_before(lab_paths: lab.LabPaths, lab_lock: None) -> dict[str, Any]:
    """The machine without the lab: leftovers of a crashed earlier session are cleared first."""
    lab.down(lab_paths)
    return machine_snapshot()


@pytest.fixture(scope="session")
def lab_up(lab_paths: lab.LabPaths, lab_machine_before: dict[str, Any]) -> Iterator[lab.LabPaths]:
    try:
        lab.up(lab_paths)
        yield lab_paths
    finally:
        lab.down(lab_paths)
        after = machine_snapshot()
        assert after == lab_machine_before, "the lab left something behind, or changed forwarding or firewall"


def _ansible(
    paths: lab.LabPaths,
    tree: Path,
    module: str,
    args: str = "",
    *,
    pattern: str = "all",
    config: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Run an ad-hoc module over SSH on lab hosts; each host's result, as Ansible's tree callback saw it."""
    env = dict(os.environ)
    if config is not None:
        env["ANSIBLE_CONFIG"] = str(config)
    argv = [str(ANSIBLE), "-i", str(paths.inventory), pattern, "-m", module, "-t", str(tree), "-f", "20"]
    if args:
        argv += ["-a", args]
    subprocess.run(argv, cwd=paths.root, env=env, capture_output=True, text=True, timeout=120, check=False)
    return {path.name: json.loads(path.read_text()) for path in tree.iterdir()}


def _depmirror(
    *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """The real `depmirror` command, as a user runs it."""
    argv = [*prefix, sys.executable, "-m", "depmirror.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, check=False)


@pytest.fixture(scope="session")
def lab_ansible() -> Any:
    """Run an ad-hoc module on lab hosts: (paths, tree_dir, module, args, pattern=, config=) -> results."""
    return _ansible


@pytest.fixture(scope="session")
def lab_cli() -> Any:
    """Run `depmirror ARGS...` as a user would: (*args, env=, prefix=) -> CompletedProcess."""
    return _depmirror


@pytest.fixture(scope="session")
def lab_machine_snapshot() -> Any:
    return machine_snapshot
