"""Where the lab keeps its files: definitions in lab/, run-time state in lab/.state/ (gitignored)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from depmirror_lab.system import LabError

ROOT_ENV = "DEPMIRROR_ROOT"


@dataclass(frozen=True)
class LabPaths:
    root: Path

    @property
    def lab(self) -> Path:
        return self.root / "lab"

    @property
    def containers_conf(self) -> Path:
        return self.lab / "containers.conf"

    @property
    def image_context(self) -> Path:
        return self.lab / "image"

    @property
    def state(self) -> Path:
        return self.lab / ".state"

    @property
    def lock(self) -> Path:
        return self.state / "lock"

    @property
    def rootfs(self) -> Path:
        return self.state / "rootfs"

    @property
    def ssh_key(self) -> Path:
        return self.state / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state / "ssh" / "known_hosts"

    @property
    def host_keys(self) -> Path:
        return self.state / "hostkeys"

    @property
    def etc_hosts(self) -> Path:
        return self.state / "hosts"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    @property
    def inventory(self) -> Path:
        return self.root / "inventories" / "lab" / "hosts.yml"


def find_root(start: Path | None = None) -> Path:
    """The checkout holding lab/: $DEPMIRROR_ROOT, else the nearest parent of the working directory."""
    if os.environ.get(ROOT_ENV):
        candidates = [Path(os.environ[ROOT_ENV])]
    else:
        here = (start or Path.cwd()).resolve()
        # The package sits at <root>/src/depmirror/lab in a checkout, so try that too.
        candidates = [here, *here.parents, Path(__file__).resolve().parents[3]]
    for candidate in candidates:
        if (candidate / "lab" / "image" / "Containerfile").is_file():
            return candidate
    raise LabError(
        "cannot find the depmirror checkout (a directory with lab/image/Containerfile) "
        f"(fix: run from the checkout or set {ROOT_ENV})"
    )


def lab_paths(root: Path | None = None) -> LabPaths:
    return LabPaths(root if root is not None else find_root())
