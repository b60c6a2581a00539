"""What a host has now, in one round trip: the facts the adjust operations decide from.

pyinfra's stock operations ask one fact per file and per unit (`File`, `Sha1File`, `SystemdStatus`, ...),
one SSH command each, host after host while operations are prepared. A VM runs several instances with
four or five things each to check, so this fact asks for all of them in one command, and the frontend
fetches it for every host in parallel before it adds the operations (docs/pyinfra.md, "Speed").
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import FactBase

RUNNING = frozenset({"active", "activating", "reloading"})  # what ansible.builtin.systemd takes as started


@dataclass(frozen=True, slots=True)
class FileState:
    mode: str  # octal without leading zeros, as `stat -c %a` prints it
    sha1: str | None  # None for a directory


@dataclass(frozen=True, slots=True)
class UnitState:
    active: str  # `systemctl is-active`
    enabled: str  # `systemctl is-enabled`

    @property
    def running(self) -> bool:
        return self.active in RUNNING

    @property
    def is_enabled(self) -> bool:
        return self.enabled in ("enabled", "enabled-runtime", "static", "alias")


@dataclass(frozen=True, slots=True)
class HostState:
    files: dict[str, FileState | None] = field(default_factory=dict)
    units: dict[str, UnitState] = field(default_factory=dict)


def _script(paths: tuple[str, ...], units: tuple[str, ...]) -> str:
    """Lines `F <i> <mode> <sha1|->`, `F <i> -` (absent), `U <i> <active> <enabled>`: indexes, not names, so
    that no path or unit name has to be parsed back."""
    lines = []
    for i, path in enumerate(paths):
        p = shlex.quote(path)
        lines.append(
            f"if [ -f {p} ]; then echo F {i} $(stat -c %a {p}) $(sha1sum < {p} | cut -c1-40); "
            f"elif [ -d {p} ]; then echo F {i} $(stat -c %a {p}) -; else echo F {i} -; fi"
        )
    for i, unit in enumerate(units):
        u = shlex.quote(unit)
        lines.append(f"echo U {i} $(systemctl is-active {u} 2>/dev/null) $(systemctl is-enabled {u} 2>/dev/null)")
    return "; ".join(lines) or "true"


def parse_host_state(paths: tuple[str, ...], units: tuple[str, ...], output: list[str]) -> HostState:
    files: dict[str, FileState | None] = dict.fromkeys(paths)
    found: dict[str, UnitState] = {u: UnitState("unknown", "unknown") for u in units}
    for line in output:
        parts = line.split()
        if len(parts) < 3 or not parts[1].isdigit():
            continue
        index = int(parts[1])
        if parts[0] == "F" and index < len(paths) and parts[2] != "-":
            sha1 = parts[3] if len(parts) > 3 and parts[3] != "-" else None
            files[paths[index]] = FileState(parts[2].lstrip("0") or "0", sha1)
        elif parts[0] == "U" and index < len(units):
            found[units[index]] = UnitState(parts[2], parts[3] if len(parts) > 3 else "unknown")
    return HostState(files, found)


class DepmirrorHostState(FactBase[HostState]):
    """Mode and SHA-1 of each path (or None when absent), and each unit's active and enabled state."""

    def command(self, paths: tuple[str, ...] = (), units: tuple[str, ...] = ()) -> str:
        self._asked = (tuple(paths), tuple(units))
        return _script(*self._asked)

    def process(self, output: list[str]) -> HostState:
        return parse_host_state(*self._asked, output)

    @staticmethod
    def default() -> Any:
        return HostState()


class ReleaseDirs(FactBase[list[tuple[float, str]]]):
    """The release directories under `releases`, with their modification time (newest first)."""

    def command(self, releases: str) -> str:
        d = shlex.quote(releases)
        return f"find {d} -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\\n' 2>/dev/null || true"

    def process(self, output: list[str]) -> list[tuple[float, str]]:
        found = []
        for line in output:
            stamp, _, path = line.partition(" ")
            try:
                found.append((float(stamp), path))
            except ValueError:
                continue
        return sorted(found, reverse=True)

    @staticmethod
    def default() -> Any:
        return []


class RedisReplication(FactBase[str]):
    """`redis-cli -p PORT info replication` as text; empty when the instance does not answer (the playbook
    reads it with failed_when false, and leaves out the survivors that did not answer)."""

    def command(self, port: int) -> str:
        return f"redis-cli -p {int(port)} info replication 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        return "\n".join(output)

    @staticmethod
    def default() -> Any:
        return ""
