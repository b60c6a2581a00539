"""The state of a user-declared engine (`stateful:` in the graph) on a switchover: its own argv lists, over SSH.

The graph gives three argument vectors (the plan carries them as `stateful_commands`): `lag` prints how far
a survivor is behind (one integer, 0 = caught up, in whatever unit `max lag` is given in), `fence` stops a
former primary from taking writes, `promote` makes a survivor the writer. Each runs on the VM exactly as
written: the command line SSH needs is `shlex.join(argv)`, so the remote shell hands every argument over
as one literal word (`; rm -rf /`, `$(id)`, `{{ 7*7 }}` arrive as those characters), and nothing here or
in Ansible templates them. Repointing the other replicas is the engine's own business (its `promote`, or
its discovery): depmirror has no generic way to say "follow that one".
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from depmirror.errors import DepmirrorError
from depmirror.rollback.postgres_state import Runner

_LAG_ANSWER = re.compile(r"^[0-9]{1,18}$")  # not \d: it takes any Unicode digit


class CommandStateError(DepmirrorError):
    """A declared command failed, or the plan carries none."""


@dataclass(frozen=True, slots=True)
class StatefulCommands:
    promote: tuple[str, ...]
    fence: tuple[str, ...]
    lag: tuple[str, ...]

    @staticmethod
    def of(item: Mapping[str, Any]) -> StatefulCommands:
        """From a plan's dependency (its `stateful_commands`); refuses anything but lists of strings."""
        found = item.get("stateful_commands")
        if not isinstance(found, Mapping):
            raise CommandStateError(f"{item.get('name')}: the plan carries no stateful_commands (fix: re-run adjust)")
        steps = {}
        for step in ("promote", "fence", "lag"):
            argv = found.get(step)
            if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
                raise CommandStateError(f"{item.get('name')}: stateful_commands.{step} is not a list of strings")
            steps[step] = tuple(argv)
        return StatefulCommands(**steps)


def command_line(argv: Sequence[str]) -> str:
    """The one string SSH carries: each argument quoted so the remote shell passes it on unchanged."""
    if not argv:
        raise CommandStateError("an empty argv cannot run")
    return shlex.join(argv)


def parse_lag(answer: str) -> int | None:
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    return int(lines[-1]) if lines and _LAG_ANSWER.match(lines[-1]) else None


def _offset(sessions: Runner, argv: Sequence[str], address: str, timeout_s: float) -> int | None:
    try:
        rc, out, _ = sessions.run(address, command_line(argv), timeout_s=timeout_s)
    except (DepmirrorError, OSError):
        return None
    lag = parse_lag(out) if rc == 0 else None
    # As an offset (higher is more advanced), so flow.lag_exclusions gates it as it does Redis and PostgreSQL.
    return None if lag is None else -lag


def read_offsets(
    sessions: Runner, commands: StatefulCommands, survivors: Mapping[str, str], timeout_s: float
) -> dict[str, int]:
    """host -> minus its lag, for the survivors (host -> address) whose `lag` printed an integer."""
    if not survivors:
        return {}
    with ThreadPoolExecutor(max_workers=len(survivors)) as pool:
        found = dict(
            zip(
                survivors,
                pool.map(lambda address: _offset(sessions, commands.lag, address, timeout_s), survivors.values()),
                strict=True,
            )
        )
    return {host: offset for host, offset in found.items() if offset is not None}


def fence(sessions: Runner, commands: StatefulCommands, address: str, timeout_s: float) -> bool:
    """The declared `fence` on the old primary's host; False when it failed or the host did not answer."""
    try:
        rc, _, _ = sessions.run(address, command_line(commands.fence), timeout_s=timeout_s)
    except (DepmirrorError, OSError):
        return False
    return rc == 0


def promote(sessions: Runner, commands: StatefulCommands, address: str, timeout_s: float) -> None:
    """The declared `promote` on the target's host; CommandStateError with its words when it fails."""
    try:
        rc, out, err = sessions.run(address, command_line(commands.promote), timeout_s=timeout_s)
    except (DepmirrorError, OSError) as error:
        raise CommandStateError(f"cannot run promote on {address}: {error}") from error
    if rc != 0:
        said = (err.strip() or out.strip())[-300:]
        raise CommandStateError(f"promote on {address} exited {rc}: {said or 'no output'}")


# --- the fast path's entry points: a decision (flow.prepare_rollback's dict) in, as for redis -----------
def applies(decided: Mapping[str, Any]) -> bool:
    """Whether the dependency is a user-declared engine (its plan entry carries `stateful_commands`)."""
    return "stateful_commands" in decided["after"]


def offsets_for(sessions: Runner, decided: Mapping[str, Any], timeout_s: float) -> dict[str, int]:
    addresses = {i["host"]: str(i["address"]) for i in decided["after"]["instances"]}
    survivors = {h: addresses[h] for h in decided["survivors"] if h in addresses}
    return read_offsets(sessions, StatefulCommands.of(decided["after"]), survivors, timeout_s)


def fence_for(sessions: Runner, decided: Mapping[str, Any], *, timeout_s: float) -> bool:
    """`fence` on the failed primary's host (best effort), before the lags are read: it stops taking writes."""
    return fence(sessions, StatefulCommands.of(decided["after"]), str(decided["failed"]["address"]), timeout_s)


def migrate_for(sessions: Runner, decided: Mapping[str, Any], *, timeout_s: float) -> list[str]:
    """`promote` on the target's host (must succeed; the old primary was fenced first). Nothing to repoint:
    the engine's own business."""
    promote(sessions, StatefulCommands.of(decided["after"]), str(decided["target"]["address"]), timeout_s)
    return []
