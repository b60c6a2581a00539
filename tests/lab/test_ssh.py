"""Every lab host answers Ansible over real SSH and runs systemd, like a VM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import depmirror_lab as lab
import pytest

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]


def test_ansible_pings_every_host_over_ssh(lab_up: lab.LabPaths, tmp_path: Path, lab_ansible: Any) -> None:
    results = lab_ansible(lab_up, tmp_path, "ansible.builtin.ping")

    assert {name: r.get("ping") for name, r in results.items()} == {h.name: "pong" for h in lab.HOSTS}


def test_inventory_works_without_the_checkouts_ansible_cfg(
    lab_up: lab.LabPaths, tmp_path: Path, lab_ansible: Any
) -> None:
    empty = tmp_path / "empty.cfg"
    empty.write_text("[defaults]\n")
    tree = tmp_path / "tree"

    results = lab_ansible(lab_up, tree, "ansible.builtin.ping", config=empty)

    assert {name: r.get("ping") for name, r in results.items()} == {h.name: "pong" for h in lab.HOSTS}


def test_facts_show_systemd_and_each_hosts_own_name_and_address(
    lab_up: lab.LabPaths, tmp_path: Path, lab_ansible: Any
) -> None:
    results = lab_ansible(lab_up, tmp_path, "ansible.builtin.setup")

    for host in lab.HOSTS:
        facts = results[host.name]["ansible_facts"]
        assert facts["ansible_service_mgr"] == "systemd", host.name
        assert facts["ansible_hostname"] == host.name
        assert facts["ansible_all_ipv4_addresses"] == [host.address]
        # No route out: a lab host can reach its zone peers and the controller, nothing else.
        assert facts["ansible_default_ipv4"] == {}, host.name


def test_packages_the_roles_need_are_installed_and_offline(
    lab_up: lab.LabPaths, tmp_path: Path, lab_ansible: Any
) -> None:
    wanted = ["nginx-light", "redis-server", "python3", "python3-apt", "curl", "openssh-server"]

    results = lab_ansible(
        lab_up, tmp_path, "ansible.builtin.command", "dpkg-query -W " + " ".join(wanted), pattern="vm-a1"
    )

    assert results["vm-a1"]["rc"] == 0, results["vm-a1"]
    installed = [line.split()[0] for line in results["vm-a1"]["stdout"].splitlines()]
    assert sorted(installed) == sorted(wanted)


def test_up_again_changes_nothing(lab_up: lab.LabPaths) -> None:
    from depmirror_lab import containers

    before = containers.container_ids(lab_up)

    report = lab.up(lab_up)

    assert (report.built_image, report.created, report.repaired) == (False, [], [])
    assert containers.container_ids(lab_up) == before


def test_a_fast_path_command_that_outlives_its_timeout_runs_once_and_says_it_may_have_acted(
    lab_up: lab.LabPaths,
) -> None:
    from depmirror.errors import DepmirrorError
    from depmirror.rollback.remote import Sessions, SshOptions

    vm = next(h for h in lab.HOSTS if h.name == "vm-a1")
    sessions = Sessions(SshOptions(key_file=str(lab_up.ssh_key), known_hosts=str(lab_up.known_hosts)))
    marker = "/tmp/depmirror-run-once"
    sessions.run(vm.address, f"rm -f {marker}")

    # What a slow `pg_promote()` looks like from the runner: the work is done, the answer comes too late.
    with pytest.raises(DepmirrorError, match="it may have taken effect, so it is not run again"):
        sessions.run(vm.address, f"echo ran >> {marker}; sleep 3", timeout_s=0.5)

    rc, out, _ = sessions.run(vm.address, f"cat {marker}; rm -f {marker}")
    assert (rc, out.splitlines()) == (0, ["ran"])
