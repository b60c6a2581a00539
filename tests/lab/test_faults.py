"""Faults on a host and on a whole zone look, from the controller, as they would on VMs; restore undoes them.

stop -> connections refused; pause -> connections open but hang; cut -> nothing answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import depmirror_lab as lab
import pytest

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]

# What ssh says for each fault (a cut-off host times out, or "No route to host" once ARP has given up).
SSH_SAYS = {
    "stop": ("Connection refused",),
    "pause": ("timed out during banner exchange",),
    "cut": ("Connection timed out", "No route to host"),
}
PROBE_SAYS = {"stop": lab.REFUSED, "pause": lab.HUNG, "cut": lab.UNREACHABLE}


@pytest.fixture
def restored(lab_up: lab.LabPaths) -> Iterator[lab.LabPaths]:
    """The lab, with every fault undone afterwards even when the test fails half-way."""
    try:
        yield lab_up
    finally:
        lab.restore(lab_up)


def test_host_faults_are_seen_as_refused_timed_out_and_unreachable(
    restored: lab.LabPaths, tmp_path: Path, lab_ansible: Any, lab_cli: Any
) -> None:
    hit = {"vm-a1": "stop", "vm-b1": "pause", "vm-c1": "cut"}
    lab_ansible(restored, tmp_path / "warm", "ansible.builtin.ping")  # open multiplexed connections first

    for name, kind in hit.items():
        assert [h.name for h in lab.fault(restored, kind, name)] == [name]
    results = lab_ansible(restored, tmp_path / "faulted", "ansible.builtin.ping")
    shown = lab_cli("lab", "status", "--json")

    for name, kind in hit.items():
        assert results[name].get("unreachable") is True, (name, results[name])
        assert any(text in results[name]["msg"] for text in SSH_SAYS[kind]), (name, results[name]["msg"])
        assert lab.probe_ssh(lab.resolve_target(name)[0].address) == PROBE_SAYS[kind]
    healthy = {h.name for h in lab.HOSTS} - set(hit)
    assert {name for name, r in results.items() if r.get("ping") == "pong"} == healthy
    assert shown.returncode == 1, shown.stderr
    status = {entry["name"]: entry for entry in json.loads(shown.stdout)}
    assert (status["vm-a1"]["container"], status["vm-a1"]["ssh"]) == ("exited", lab.REFUSED)
    assert (status["vm-b1"]["container"], status["vm-b1"]["ssh"]) == ("paused", lab.HUNG)
    assert (status["vm-c1"]["cable"], status["vm-c1"]["ssh"]) == ("down", lab.UNREACHABLE)

    lab.restore(restored)
    after = lab_ansible(restored, tmp_path / "restored", "ansible.builtin.ping")

    assert {name: r.get("ping") for name, r in after.items()} == {h.name: "pong" for h in lab.HOSTS}


def test_zone_faults_hit_every_host_of_the_zone_and_nothing_else(restored: lab.LabPaths, lab_cli: Any) -> None:
    plan = {"zone-a": "stop", "zone-b": "pause", "zone-c": "cut"}

    for zone, kind in plan.items():
        done = lab_cli("lab", "fault", kind, zone)
        assert done.returncode == 0, done.stderr

    for host in lab.HOSTS:
        expected = PROBE_SAYS[plan[host.zone]] if host.zone else lab.OK
        assert lab.probe_ssh(host.address) == expected, host.name

    for zone in plan:
        done = lab_cli("lab", "restore", zone)
        assert done.returncode == 0, done.stderr
    assert {h.name: lab.probe_ssh(h.address) for h in lab.HOSTS} == {h.name: lab.OK for h in lab.HOSTS}
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"


def test_unknown_fault_target_is_refused_with_the_names_that_exist(lab_paths: lab.LabPaths, lab_cli: Any) -> None:
    done = lab_cli("lab", "fault", "stop", "vm-z9")

    assert done.returncode == 2
    assert "unknown lab host or zone 'vm-z9'" in done.stderr
    assert "zone-a" in done.stderr
