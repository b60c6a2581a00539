"""Running the host tools the lab is made of (podman, ip, debootstrap), with bounded waits.

Every check that can fail on a fresh machine (not root, a missing binary) fails before anything is
created, naming the Debian package that provides what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from depmirror.errors import DepmirrorError

# Binary -> the Debian package that ships it, for the error a user sees when it is missing.
PACKAGES = {
    "podman": "podman",
    "runc": "runc",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "debootstrap": "debootstrap",
    "tar": "tar",
}
RUN_TIMEOUT_S = 120.0


class LabError(DepmirrorError):
    """The lab cannot be brought to the requested state; the message says what to do."""


def require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise LabError(
            f"`depmirror lab {action}` needs root: it creates network namespaces and rootful podman "
            "containers (fix: run it as root, e.g. with sudo)"
        )


def require_binaries(names: Iterable[str]) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        packages = sorted({PACKAGES.get(name, name) for name in missing})
        raise LabError(f"missing {', '.join(missing)} on PATH (fix: apt-get install {' '.join(packages)})")


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = RUN_TIMEOUT_S,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output; with check, a failure raises LabError naming it."""
    try:
        result = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            input=stdin.decode() if stdin is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout:.0f} s") from error
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit status {result.returncode}"
        raise LabError(f"`{' '.join(argv)}` failed: {last}")
    return result


def podman_env(containers_conf: Path) -> dict[str, str]:
    """The environment for podman: the lab's containers.conf (runc, ulimits this machine allows)."""
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(containers_conf)
    return env
