"""The lab's pure parts, without root or podman: shape, inventory, mirror lookup, PID-file processes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import depmirror_lab as lab
import pytest
import yaml
from depmirror_lab import daemons, inventory
from depmirror_lab.image import context_digest, debian_mirror


def test_targets_name_a_host_a_zone_its_group_or_all() -> None:
    assert [h.name for h in lab.resolve_target("zone-b")] == ["vm-b1", "vm-b2"]
    assert [h.name for h in lab.resolve_target("zone_c")] == ["vm-c1", "vm-c2"]
    assert [h.name for h in lab.resolve_target("lb")] == ["lb1"]
    assert len(lab.resolve_target("all")) == len(lab.HOSTS)
    with pytest.raises(lab.LabError, match="unknown lab host or zone 'zone-q'"):
        lab.resolve_target("zone-q")


def test_every_address_is_inside_the_lab_range_and_macs_are_unique() -> None:
    assert all(h.address.startswith("198.18.0.") for h in lab.HOSTS)
    assert len({h.mac for h in lab.HOSTS}) == len(lab.HOSTS)
    assert all(len(h.veth) <= 15 for h in lab.HOSTS)  # the kernel's limit for interface names


def test_inventory_has_zone_groups_the_lb_and_fast_failing_ssh(tmp_path: Path) -> None:
    paths = lab.LabPaths(tmp_path)

    inventory.write(paths)
    data = yaml.safe_load(paths.inventory.read_text())

    groups = data["all"]["children"]
    assert set(groups["zone_a"]["hosts"]) == {"vm-a1", "vm-a2"}
    assert groups["zone_b"]["hosts"]["vm-b2"] == {"ansible_host": "198.18.0.22", "zone": "zone-b"}
    assert groups["lb"]["hosts"] == {"lb1": {"ansible_host": "198.18.0.2"}}
    assert set(groups["lab"]["children"]["zones"]["children"]) == {"zone_a", "zone_b", "zone_c"}
    hostvars = data["all"]["vars"]
    assert hostvars["ansible_user"] == "root"
    assert hostvars["ansible_ssh_private_key_file"] == str(tmp_path / "lab/.state/ssh/id_ed25519")
    for option in ("ConnectTimeout=5", "ServerAliveInterval=1", "ServerAliveCountMax=3", "BatchMode=yes"):
        assert option in hostvars["ansible_ssh_common_args"]


def test_the_image_is_built_from_the_mirror_apt_already_uses(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )

    assert debian_mirror(tmp_path) == "http://mirror.example/debian"
    assert debian_mirror(tmp_path / "nothing-here") == "http://deb.debian.org/debian"


def test_a_started_process_is_stopped_by_its_pid_file(tmp_path: Path) -> None:
    paths = lab.LabPaths(tmp_path)

    pid = daemons.start(paths, "sleeper", ["sleep", "60"])
    assert daemons.running(paths) == {"sleeper": pid}
    assert daemons.stop_all(paths) == ["sleeper"]

    assert daemons.running(paths) == {}
    assert not Path(f"/proc/{pid}").exists()


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    paths = lab.LabPaths(tmp_path)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        paths.pids.mkdir(parents=True)
        # A PID file naming a live PID but another start time: the recorded process is long gone.
        (paths.pids / "old.pid").write_text(f"{bystander.pid} 1\n")

        assert daemons.stop_all(paths) == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_an_edited_image_definition_changes_the_digest_the_image_is_labelled_with(tmp_path: Path) -> None:
    paths = lab.LabPaths(tmp_path)
    paths.image_context.mkdir(parents=True)
    (paths.image_context / "Containerfile").write_text("FROM localhost/depmirror-lab-base:latest\n")
    before = context_digest(paths)

    (paths.image_context / "Containerfile").write_text("FROM localhost/depmirror-lab-base:latest\nRUN true\n")

    assert context_digest(paths) != before
