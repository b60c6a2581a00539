"""SSH material, made at run time under lab/.state/ and never committed.

Host keys are made here rather than inside each host, so the controller knows them before the hosts
boot and SSH checks them strictly, as it would for VMs whose keys came from the provisioning system.
"""

from __future__ import annotations

from pathlib import Path

from depmirror_lab.paths import LabPaths
from depmirror_lab.shape import CONTROLLER_ADDRESS, HOSTS
from depmirror_lab.system import run


def _keypair(private: Path, comment: str) -> None:
    if private.is_file() and private.with_suffix(".pub").is_file():
        return
    private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    private.unlink(missing_ok=True)
    private.with_suffix(".pub").unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private)])


def ensure_keys(paths: LabPaths) -> None:
    """The controller's key, one host key per host, known_hosts and each host's /etc/hosts."""
    _keypair(paths.ssh_key, "depmirror-lab-controller")
    known = []
    for host in HOSTS:
        private = paths.host_keys / host.name / "ssh_host_ed25519_key"
        _keypair(private, f"root@{host.name}")
        algorithm, key = private.with_suffix(".pub").read_text().split()[:2]
        known.append(f"{host.address},{host.name} {algorithm} {key}\n")
    paths.known_hosts.write_text("".join(known))
    paths.etc_hosts.mkdir(parents=True, exist_ok=True)
    names = [f"{CONTROLLER_ADDRESS}\tcontroller\n"] + [f"{h.address}\t{h.name}\n" for h in HOSTS]
    loopback = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    for host in HOSTS:
        # Rewritten on every `up` so a role's edit does not survive a rebuild of the lab.
        (paths.etc_hosts / host.name).write_text(loopback + "".join(names))
