"""The pyinfra frontend on the lab: adjust through pyinfra leaves every host byte-identical to adjust.yml.

One sequence for the module (xdist keeps no order inside the lab group, and each step needs the one before):
adjust.yml on the wiped lab, every managed file collected; wipe; `depmirror pyinfra adjust` with a fresh
store, files collected again; pyinfra again (a no-op); then adjust.yml over what pyinfra left. Then drift
(a unit file edited, nginx.conf edited, an instance stopped) that a pyinfra adjust must find and repair,
and drift on two VMs of which `--limit` repairs one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import depmirror_lab as lab
import pytest
import yaml
from depmirror_lab import failover
from tests.integration.ansible_run import ROOT, PlaybookRun, playbook

from depmirror.fleet.applied import hosts_by_dependency
from depmirror.store import open_store

pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("lab")]
GRAPH = ROOT / "inventories" / "example" / "graph.yml"
# What the roles write and the frontends must agree on: every unit and Redis configuration on the VMs (and
# the modes of their directories); nginx.conf and everything under /etc/nginx/depmirror on the LBs.
VM_FILES = "/etc/systemd/system/depmirror-*.service /etc/depmirror"
VM_DIRS = "/etc/depmirror /var/lib/depmirror"
LB_FILES = "/etc/nginx/nginx.conf /etc/nginx/depmirror"


@dataclass
class PyinfraRun:
    rc: int
    report: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def changed(self) -> int:
        return int(self.report.get("changed", -1))

    def changed_ops(self) -> list[tuple[str, str]]:
        return [(op["host"], op["operation"]) for phase in self.report.get("phases", []) for op in phase["changed"]]


def run_pyinfra(paths: lab.LabPaths, action: str, inventory: Path, *extra: str, timeout: float = 600) -> PyinfraRun:
    """`depmirror pyinfra ACTION -i INVENTORY --json ...` as a user runs it, with the lab's SSH key."""
    argv = [
        sys.executable,
        "-m",
        "depmirror.cli",
        "pyinfra",
        action,
        "-i",
        str(inventory),
        "--ssh-key",
        str(paths.ssh_key),
        "--known-hosts",
        str(paths.known_hosts),
        "--json",
        *extra,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    try:
        report = json.loads(done.stdout) if done.stdout.strip() else {}
    except json.JSONDecodeError:
        report = {"unparsed": done.stdout}
    return PyinfraRun(done.returncode, report, done.stdout, done.stderr)


def host_files(paths: lab.LabPaths, host: str) -> dict[str, str]:
    """Every file adjust manages on `host` (path -> mode and content), and the modes of its directories."""
    lb = host.startswith("lb")
    command = (
        f"for f in $(find {LB_FILES if lb else VM_FILES} -type f 2>/dev/null | sort); do "
        'printf "\\0== %s %s\\n" "$f" "$(stat -c %a "$f")"; cat "$f"; done'
    )
    if not lb:
        command += f"; printf '\\0== dirs -\\n'; find {VM_DIRS} -type d -printf '%p %m\\n' 2>/dev/null | sort"
    done = failover.ssh(paths, host, command, timeout_s=30)
    assert done.returncode == 0, f"{host}: {done.stderr}"
    found = {}
    for chunk in done.stdout.split("\0")[1:]:
        header, _, content = chunk.partition("\n")
        _, path, mode = header.split(" ")
        found[path] = f"mode {mode}\n{content}"
    return found


def fleet_files(paths: lab.LabPaths) -> dict[str, dict[str, str]]:
    return {host.name: host_files(paths, host.name) for host in lab.HOSTS}


def fleet_source(directory: Path, store: Path) -> Path:
    source = directory / f"{store.stem}.depmirror.yml"
    source.write_text(
        yaml.safe_dump({"plugin": "depmirror.mirroring.graph", "graph": str(GRAPH), "state_store": str(store)})
    )
    return source


def applied(store: Path) -> tuple[dict[str, frozenset[str]], dict[str, str]]:
    with open_store(str(store)) as opened:
        return hosts_by_dependency(opened.applied_plan()), opened.primaries()


@dataclass
class Sequence:
    ansible: PlaybookRun
    ansible_files: dict[str, dict[str, str]]
    first: PyinfraRun
    pyinfra_files: dict[str, dict[str, str]]
    noop: PyinfraRun
    ansible_after: PlaybookRun
    stores: tuple[Path, Path]
    drift: Drift


@dataclass
class Drift:
    repaired: PyinfraRun  # after a unit file, nginx.conf and an instance drifted
    repaired_files: dict[str, dict[str, str]]
    stopped_after: str  # `systemctl is-active` of the stopped instance after the repair
    limited: PyinfraRun  # --limit on one of two drifted VMs
    whole_after: PyinfraRun  # then without a limit


def first_unit(paths: lab.LabPaths, host: str) -> str:
    done = failover.ssh(paths, host, "ls /etc/systemd/system/depmirror-*.service | head -1", timeout_s=20)
    assert done.returncode == 0 and done.stdout.strip(), f"{host}: {done.stderr}"
    return done.stdout.strip()


def sh(paths: lab.LabPaths, host: str, command: str) -> str:
    done = failover.ssh(paths, host, command, timeout_s=20)
    assert done.returncode == 0, f"{host}: {command}: {done.stderr}"
    return done.stdout.strip()


def drift(paths: lab.LabPaths, source: Path) -> Drift:
    """Drift the adjust must see: vm-a1's unit edited, lb1's nginx.conf edited, vm-c1's first unit stopped;
    then vm-a2 and vm-b1 both edited and only vm-a2 named in --limit."""
    sh(paths, "vm-a1", f"echo '# drift' >> {first_unit(paths, 'vm-a1')}")
    sh(paths, "lb1", "echo '# drift' >> /etc/nginx/nginx.conf")
    stopped = first_unit(paths, "vm-c1").rsplit("/", 1)[-1]
    sh(paths, "vm-c1", f"systemctl stop {stopped}")
    repaired = run_pyinfra(paths, "adjust", source)
    files = fleet_files(paths)
    active = failover.ssh(paths, "vm-c1", f"systemctl is-active {stopped}", timeout_s=20).stdout.strip()
    for host in ("vm-a2", "vm-b1"):
        sh(paths, host, f"echo '# drift' >> {first_unit(paths, host)}")
    limited = run_pyinfra(paths, "adjust", source, "--limit", "vm-a2,depmirror_load_balancers")
    return Drift(repaired, files, active, limited, run_pyinfra(paths, "adjust", source))


def wipe(paths: lab.LabPaths) -> None:
    wiped = playbook("tests/integration/playbooks/wipe.yml", [paths.inventory])
    assert wiped.rc == 0, wiped.messages() or wiped.stderr[-3000:]


@pytest.fixture(scope="module")
def sequence(lab_up: lab.LabPaths, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sequence]:
    directory = tmp_path_factory.mktemp("pyinfra-parity")
    ansible_store, pyinfra_store = directory / "ansible.db", directory / "pyinfra.db"
    wipe(lab_up)
    ansible = playbook("playbooks/adjust.yml", [lab_up.inventory, fleet_source(directory, ansible_store)])
    assert ansible.rc == 0, ansible.messages() or ansible.stderr[-3000:]
    ansible_files = fleet_files(lab_up)
    wipe(lab_up)
    source = fleet_source(directory, pyinfra_store)
    first = run_pyinfra(lab_up, "adjust", source)
    assert first.rc == 0, first.stderr[-3000:]
    pyinfra_files = fleet_files(lab_up)
    noop = run_pyinfra(lab_up, "adjust", source)
    after = playbook("playbooks/adjust.yml", [lab_up.inventory, source])
    drifted = drift(lab_up, source)
    stores = (ansible_store, pyinfra_store)
    yield Sequence(ansible, ansible_files, first, pyinfra_files, noop, after, stores, drifted)
    wipe(lab_up)


def test_pyinfra_adjust_writes_every_unit_and_nginx_file_byte_identical_to_adjust_yml(sequence: Sequence) -> None:
    ansible, pyinfra = sequence.ansible_files, sequence.pyinfra_files
    assert set(ansible) == set(pyinfra)
    units = [path for files in ansible.values() for path in files if path.endswith(".service")]
    assert len(units) >= 10, "the example fleet should run at least ten instances"
    assert any(path.endswith(".redis.conf") for files in ansible.values() for path in files)
    assert any("/releases/" in path for path in ansible["lb1"]), ansible["lb1"].keys()
    for host in ansible:
        assert sorted(pyinfra[host]) == sorted(ansible[host]), host
        for path, content in ansible[host].items():
            assert pyinfra[host][path] == content, f"{host}:{path} differs between the frontends"


def test_both_frontends_record_the_same_applied_plan(sequence: Sequence) -> None:
    ansible_store, pyinfra_store = sequence.stores
    assert applied(pyinfra_store) == applied(ansible_store)
    assert applied(pyinfra_store)[0], "nothing was recorded"


def test_a_second_pyinfra_adjust_reports_no_change(sequence: Sequence) -> None:
    assert sequence.first.changed > 0
    assert sequence.noop.rc == 0, sequence.noop.stderr[-3000:]
    assert sequence.noop.changed == 0, sequence.noop.changed_ops()
    phases = {phase["phase"]: phase for phase in sequence.noop.report["phases"]}
    assert phases["primaries"]["operations"] > 0 and phases["load balancers"]["operations"] > 0


def test_adjust_yml_after_pyinfra_changes_nothing_on_any_host(sequence: Sequence) -> None:
    """A user can switch frontends without a diff: Ansible finds nothing to do on what pyinfra left."""
    after = sequence.ansible_after
    assert after.rc == 0, after.messages() or after.stderr[-3000:]
    assert after.hosts_changed() <= {"localhost"}, [
        (t["task"]["name"], h) for t in after.tasks() for h, r in t["hosts"].items() if r.get("changed")
    ]


def test_pyinfra_adjust_finds_and_repairs_a_drifted_unit_nginx_conf_and_a_stopped_instance(sequence: Sequence) -> None:
    """The no-op check reads every host once; drift on any of them still makes the phases run."""
    found = sequence.drift.repaired
    assert found.rc == 0, found.stderr[-3000:]
    hosts = {host for host, _ in found.changed_ops()}
    assert hosts == {"vm-a1", "lb1", "vm-c1"}, found.changed_ops()
    assert sequence.drift.stopped_after == "active"
    for host, files in sequence.ansible_files.items():
        assert sequence.drift.repaired_files[host] == files, f"{host} differs from adjust.yml's after the repair"


def test_a_limited_pyinfra_adjust_repairs_only_the_hosts_it_names(sequence: Sequence) -> None:
    limited, whole = sequence.drift.limited, sequence.drift.whole_after
    assert limited.rc == 0, limited.stderr[-3000:]
    assert {host for host, _ in limited.changed_ops()} == {"vm-a2"}, limited.changed_ops()
    checked = {host for phase in limited.report["phases"] for host in phase["hosts"]}
    assert checked == {"vm-a2", "lb1"}, "the limited run has operations on the named hosts only"
    assert whole.rc == 0 and {host for host, _ in whole.changed_ops()} == {"vm-b1"}, whole.changed_ops()
