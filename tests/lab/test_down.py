"""`lab up` repairs, and `lab down` clears, a lab left half-broken the way a crashed run leaves it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import depmirror_lab as lab
import pytest
from depmirror_lab import daemons

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]


def _sh(*argv: str) -> None:
    env = dict(os.environ, CONTAINERS_CONF=str(lab.lab_paths().containers_conf))
    subprocess.run(argv, check=True, capture_output=True, env=env, timeout=60)


def test_up_repairs_removed_stopped_and_unwired_hosts(lab_up: lab.LabPaths, tmp_path: Path, lab_ansible: Any) -> None:
    _sh("podman", "rm", "-f", "-t", "1", "vm-a1")
    _sh("ip", "netns", "del", "vm-b1")  # the container keeps a namespace nobody can name any more
    _sh("podman", "stop", "-t", "1", "vm-c2")
    _sh("ip", "link", "set", "lab-vm-c1", "down")

    report = lab.up(lab_up)
    results = lab_ansible(lab_up, tmp_path, "ansible.builtin.ping")

    assert sorted(report.created) == ["vm-a1", "vm-b1"]
    assert report.repaired == ["vm-c2"]
    assert {name: r.get("ping") for name, r in results.items()} == {h.name: "pong" for h in lab.HOSTS}


def test_down_after_a_crash_leaves_nothing_and_up_brings_the_lab_back(
    lab_up: lab.LabPaths, lab_machine_before: dict[str, Any], lab_machine_snapshot: Any
) -> None:
    sleeper = daemons.start(lab_up, "test-sleeper", ["sleep", "300"])
    _sh("podman", "pause", "vm-a2")
    _sh("ip", "netns", "del", "vm-b2")
    _sh("ip", "link", "del", "labbr0")

    report = lab.down(lab_up)

    assert lab_machine_snapshot() == lab_machine_before
    assert report.stopped_processes == ["test-sleeper"]
    with pytest.raises(ProcessLookupError):
        os.kill(sleeper, 0)
    assert not lab_up.inventory.exists()
    again = lab.down(lab_up)
    assert (again.removed_containers, again.removed_namespaces) == ([], [])

    lab.up(lab_up)

    assert {h.name: lab.probe_ssh(h.address) for h in lab.HOSTS} == {h.name: lab.OK for h in lab.HOSTS}
