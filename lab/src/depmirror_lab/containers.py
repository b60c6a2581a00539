"""The lab hosts as rootful podman containers running systemd as PID 1, each in its own namespace."""

from __future__ import annotations

import json

from depmirror_lab.paths import LabPaths
from depmirror_lab.shape import IMAGE, LABEL, LabHost
from depmirror_lab.system import podman_env, run

STOP_TIMEOUT_S = 5
REMOVE_TIMEOUT_S = 3


def states(paths: LabPaths) -> dict[str, str]:
    """Container name -> podman state (running, paused, exited, created...) for every lab container."""
    result = run(
        ["podman", "ps", "-a", "--filter", f"label={LABEL}", "--format", "json"],
        env=podman_env(paths.containers_conf),
    )
    found: dict[str, str] = {}
    for entry in json.loads(result.stdout or "[]"):
        for name in entry.get("Names", []):
            found[name] = str(entry.get("State", "unknown"))
    return found


def container_ids(paths: LabPaths) -> dict[str, str]:
    result = run(
        ["podman", "ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}} {{.ID}}"],
        env=podman_env(paths.containers_conf),
    )
    return dict(line.split() for line in result.stdout.splitlines() if line.strip())


def run_container(paths: LabPaths, host: LabHost) -> None:
    host_keys = paths.host_keys / host.name
    mounts = {
        paths.ssh_key.with_suffix(".pub"): "/root/.ssh/authorized_keys:ro",
        host_keys / "ssh_host_ed25519_key": "/etc/ssh/ssh_host_ed25519_key:ro",
        host_keys / "ssh_host_ed25519_key.pub": "/etc/ssh/ssh_host_ed25519_key.pub:ro",
        # One file per host: a role editing /etc/hosts on one host must not change the others.
        paths.etc_hosts / host.name: "/etc/hosts",
    }
    volumes = [arg for source, target in mounts.items() for arg in ("-v", f"{source}:{target}")]
    run(
        [
            "podman",
            "run",
            "-d",
            "--name",
            host.container,
            "--hostname",
            host.name,
            "--label",
            f"{LABEL}=1",
            "--label",
            f"{LABEL}.zone={host.zone or ''}",
            "--systemd=always",
            f"--stop-timeout={STOP_TIMEOUT_S}",
            # Never podman's default network: the host's own namespace, made by network.py.
            "--network",
            f"ns:/run/netns/{host.netns}",
            "--no-hosts",
            "--dns=127.0.0.1",
            *volumes,
            "--pull=never",
            IMAGE,
            "/sbin/init",
        ],
        env=podman_env(paths.containers_conf),
    )


def act(paths: LabPaths, verb: str, names: list[str]) -> None:
    """start / stop / pause / unpause / rm the named containers in one podman call."""
    if not names:
        return
    options = {"stop": ["-t", str(STOP_TIMEOUT_S)], "rm": ["-f", "-t", str(REMOVE_TIMEOUT_S)]}
    run(["podman", verb, *options.get(verb, []), *names], env=podman_env(paths.containers_conf))
