"""What a host has now, in one round trip: the facts the adjust operations decide from.

pyinfra's stock operations ask one fact per file and per unit (`File`, `Sha1File`, `SystemdStatus`, ...),
one SSH command each, host after host while operations are prepared. A VM runs several instances with
four or five things each to check, and a load balancer a release, nginx.conf, nginx and its old releases,
so this fact asks for all of them in one command, and the frontend fetches it for every host in parallel
before it adds the operations (docs/pyinfra.md, "Speed").
"""

from __future__ import annotations

import contextlib
import re
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
    # For each directory asked for in `dirs`: its subdirectories with their modification time, newest first.
    listings: dict[str, list[tuple[float, str]]] = field(default_factory=dict)


Watch = dict[str, tuple[str, ...]]  # DepmirrorHostState's arguments: "paths", "units", "dirs"


def merge_watches(*watches: Watch) -> Watch:
    """One fact's arguments that read what each of `watches` reads (each path, unit and directory once)."""
    keys = ("paths", "units", "dirs")
    return {key: tuple(dict.fromkeys(item for w in watches for item in w.get(key, ()))) for key in keys}


def _script(paths: tuple[str, ...], units: tuple[str, ...], dirs: tuple[str, ...] = ()) -> str:
    """Four commands however many paths and units (a test per path and two systemctl calls per unit cost ~50 ms
    a host on the lab, this ~13 ms): `stat` prints `S <mode> <path>` for each path that exists, `sha1sum`
    `<sha1>  <path>` for each that is a file, `systemctl show` `Id=`, `ActiveState=`, `UnitFileState=` per unit
    (`is-active` and `is-enabled` answer from the same states), `find` `D <i> <mtime> <path>` per directory
    listed. Missing paths, directories and unknown units print nothing or an error on stderr (dropped)."""
    q = " ".join
    lines = []
    if paths:
        quoted = q(shlex.quote(p) for p in paths)
        lines += [f"stat -c 'S %a %n' {quoted} 2>/dev/null", f"sha1sum {quoted} 2>/dev/null"]
    if units:
        quoted = q(shlex.quote(u) for u in units)
        lines.append(f"systemctl show -p Id -p ActiveState -p UnitFileState {quoted} 2>/dev/null")
    for i, directory in enumerate(dirs):
        d = shlex.quote(directory)
        lines.append(f"find {d} -mindepth 1 -maxdepth 1 -type d -printf 'D {i} %T@ %p\\n' 2>/dev/null")
    return "; ".join(lines) + "; true" if lines else "true"


SHA1_LINE = re.compile(r"^([0-9a-f]{40})  (.+)$")


def parse_host_state(
    paths: tuple[str, ...], units: tuple[str, ...], output: list[str], dirs: tuple[str, ...] = ()
) -> HostState:
    """What `_script` printed. Only the paths, units and directories asked for are read back (a path is the
    rest of its line, compared with the asked ones): any other line is ignored, never an error. A file whose
    SHA-1 cannot be read back (sha1sum escapes odd names) counts as differing: a spurious rewrite, never a
    missed one."""
    asked = set(paths)
    modes: dict[str, str] = {}
    digests: dict[str, str] = {}
    records: list[dict[str, str]] = []
    listings: dict[str, list[tuple[float, str]]] = {d: [] for d in dirs}
    for line in output:
        parts = line.split(" ", 2)
        digest = SHA1_LINE.match(line)
        if parts[0] == "S" and len(parts) == 3 and parts[2] in asked and parts[1].isdigit():
            modes[parts[2]] = parts[1].lstrip("0") or "0"
        elif digest and digest.group(2) in asked:
            digests[digest.group(2)] = digest.group(1)
        elif line.startswith("Id="):
            # systemctl prints a unit's properties in its own table's order, Id first.
            records.append({"Id": line[3:].strip()})
        elif records and line.startswith(("ActiveState=", "UnitFileState=")):
            key, _, value = line.partition("=")
            records[-1][key] = value.strip()
        elif parts[0] == "D" and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(dirs):
            stamp, _, listed = parts[2].partition(" ")
            _listed(listings[dirs[int(parts[1])]], stamp, listed.strip())
    files = {p: FileState(modes[p], digests.get(p)) if p in modes else None for p in paths}
    return HostState(files, _units(units, records), {d: sorted(e, reverse=True) for d, e in listings.items()})


def _units(units: tuple[str, ...], records: list[dict[str, str]]) -> dict[str, UnitState]:
    """Each asked unit's state, by its Id (`nginx` is shown as `nginx.service`); unknown when not shown."""
    found = {u: UnitState("unknown", "unknown") for u in units}
    for record in records:
        for unit in units:
            if record["Id"] in (unit, f"{unit}.service"):
                found[unit] = UnitState(
                    record.get("ActiveState") or "unknown", record.get("UnitFileState") or "unknown"
                )
    return found


def _listed(entries: list[tuple[float, str]], stamp: str, path: str) -> None:
    with contextlib.suppress(ValueError):  # not find's own line: skipped
        entries.append((float(stamp), path))


class DepmirrorHostState(FactBase[HostState]):
    """Mode and SHA-1 of each path (or None when absent), each unit's active and enabled state, and the
    subdirectories of each directory in `dirs`."""

    def command(self, paths: tuple[str, ...] = (), units: tuple[str, ...] = (), dirs: tuple[str, ...] = ()) -> str:
        self._asked = (tuple(paths), tuple(units))
        self._dirs = tuple(dirs)
        return _script(*self._asked, self._dirs)

    def process(self, output: list[str]) -> HostState:
        return parse_host_state(*self._asked, output, self._dirs)

    @staticmethod
    def default() -> Any:
        return HostState()


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
