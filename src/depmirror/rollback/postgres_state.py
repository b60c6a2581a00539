"""PostgreSQL state on a switchover, over SSH (the migrate phase): LSNs, fence, promote, repoint.

The twin of `redis_state` for streaming replication. Every step runs `psql` as the `postgres` user on the
VM through the warm SSH sessions (`remote.Sessions`), over the instance's local socket, so no database
password or network access from the controller is needed. The order matters more than for Redis: the old
primary is fenced (its unit stopped) before a standby is promoted, so two writers never coexist where the
old host still answers. The offset of a survivor is the WAL it holds, in bytes: the most advanced survivor
holds every commit any standby acknowledged (with `policy.replication.data_loss: none`, every commit the
primary acknowledged), and `flow.lag_exclusions` gates the others exactly as it does Redis offsets.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from depmirror.errors import DepmirrorError

SOCKET_DIR = "/var/run/postgresql"
# What a standby received and flushed counts, not only what it replayed: promotion replays all of it first.
_OFFSET_SQL = (
    "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN "
    "COALESCE(GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), '0/0') "
    "ELSE pg_current_wal_lsn() END, '0/0')"
)
_OFFSET_ANSWER = re.compile(r"^([tf])\|([0-9]{1,20})(?:\.0+)?$")
_CONNINFO_PAIR = re.compile(r"^([a-z_]+)=(\S*)$")
# Keys of primary_conninfo a switchover rewrites; the rest (user, passfile, application_name, ...) is the
# mirror role's and is kept as it is.
_MOVED_KEYS = ("host", "port")


class PromotionError(DepmirrorError):
    """The target did not become a primary."""


class Runner(Protocol):
    """What a mover needs of `remote.Sessions`: run one command line on a host, (rc, stdout, stderr)."""

    def run(self, address: str, command: str, stdin: str = "", timeout_s: float = 10.0) -> tuple[int, str, str]: ...


def psql_command(port: int, *statements: str) -> str:
    """One `psql` call as the postgres user, each statement its own `-c` (ALTER SYSTEM refuses a transaction)."""
    argv = ["runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]
    argv += ["-h", SOCKET_DIR, "-p", str(int(port)), "-d", "postgres"]
    for statement in statements:
        argv += ["-c", statement]
    return shlex.join(argv)


def parse_offset(answer: str) -> int | None:
    """`t|1234` (in recovery, bytes of WAL held) -> 1234; anything else -> None (no candidate)."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    match = _OFFSET_ANSWER.match(lines[-1]) if lines else None
    return int(match.group(2)) if match else None


def _offset(sessions: Runner, address: str, port: int, timeout_s: float) -> int | None:
    try:
        rc, out, _ = sessions.run(address, psql_command(port, _OFFSET_SQL), timeout_s=timeout_s)
    except (DepmirrorError, OSError):
        return None  # an unreachable survivor is no candidate; the decision says so
    return parse_offset(out) if rc == 0 else None


def read_offsets(sessions: Runner, survivors: Mapping[str, tuple[str, int]], timeout_s: float) -> dict[str, int]:
    """host -> bytes of WAL held, for the survivors that answered (in parallel: the primary is dead)."""
    if not survivors:
        return {}
    with ThreadPoolExecutor(max_workers=len(survivors)) as pool:
        offsets = pool.map(lambda at: _offset(sessions, at[0], at[1], timeout_s), survivors.values())
        found = dict(zip(survivors, offsets, strict=True))
    return {host: offset for host, offset in found.items() if offset is not None}


def fence(sessions: Runner, address: str, unit: str, timeout_s: float) -> bool:
    """Stop and disable the old primary's unit where its host answers; False when it could not be reached.

    Without waiting: the stop is queued (so systemd does not restart it) and the unit's processes are
    SIGKILLed at once. A plain `systemctl stop` waits for the stop job, and after a crash that job waited
    for a restarted server's start and shutdown, past the timeout, twice (the SSH session then retried a
    timed-out command): 6.4 s of a switchover on the lab. A killed PostgreSQL loses no commit, and a former
    primary is rebuilt anyway.
    Best effort by design: a host that is gone cannot take writes, and the load balancer stops sending
    them once the routing is swapped.
    """
    quoted = shlex.quote(unit)
    command = (
        f"systemctl stop --no-block {quoted}; systemctl kill --signal=SIGKILL {quoted}; systemctl disable {quoted}"
    )
    try:
        rc, _, _ = sessions.run(address, command, timeout_s=timeout_s)
    except (DepmirrorError, OSError):
        return False
    return rc == 0


def conninfo_with(current: str, address: str, port: int) -> str:
    """`current` primary_conninfo pointed at address:port, every other key as it was.

    The mirror role writes simple `key=value` pairs (no quoting); anything else is refused rather than
    guessed at, and the replica is then left for adjust to repair.
    """
    pairs: list[tuple[str, str]] = []
    for word in current.split():
        match = _CONNINFO_PAIR.match(word)
        if match is None:
            raise ValueError(f"primary_conninfo has a part this cannot rewrite safely: {word[:40]!r}")
        if match.group(1) not in _MOVED_KEYS:
            pairs.append((match.group(1), match.group(2)))
    pairs = [("host", address), ("port", str(int(port))), *pairs]
    return " ".join(f"{key}={value}" for key, value in pairs)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _repoint(sessions: Runner, address: str, port: int, target: tuple[str, int], timeout_s: float) -> None:
    rc, out, err = sessions.run(
        address, psql_command(port, "SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'"), "", timeout_s
    )
    if rc != 0:
        raise PromotionError(f"cannot read primary_conninfo on {address}: {err.strip() or out.strip()}")
    conninfo = conninfo_with(out.strip(), *target)
    rc, out, err = sessions.run(
        address,
        psql_command(port, f"ALTER SYSTEM SET primary_conninfo = {_literal(conninfo)}", "SELECT pg_reload_conf()"),
        "",
        timeout_s,
    )
    if rc != 0:
        raise PromotionError(f"cannot repoint {address}: {err.strip() or out.strip()}")


def promote(
    sessions: Runner, target: tuple[str, int], replicas: Mapping[str, tuple[str, int]], timeout_s: float
) -> list[str]:
    """pg_promote() on the target (it replays all the WAL it holds first), then primary_conninfo of every
    other standby pointed at it (a reload restarts its WAL receiver; `recovery_target_timeline` is
    `latest`, so it follows the new timeline). Returns the replicas not repointed (adjust repairs them)."""
    address, port = target
    wait_s = max(1, int(timeout_s))
    try:
        rc, out, err = sessions.run(
            address,
            psql_command(port, f"SELECT pg_promote(true, {wait_s})", "SELECT pg_is_in_recovery()"),
            "",
            timeout_s + 5,
        )
    except (DepmirrorError, OSError) as error:
        raise PromotionError(f"cannot promote {address}:{port}: {error}") from error
    answers = [line.strip() for line in out.splitlines() if line.strip()]
    if rc != 0 or answers[-1:] != ["f"]:
        raise PromotionError(f"{address}:{port} did not become a primary: {err.strip() or out.strip() or 'no answer'}")
    missed = []
    for host, (replica_address, replica_port) in replicas.items():
        try:
            _repoint(sessions, replica_address, replica_port, target, timeout_s)
        except (DepmirrorError, OSError, ValueError):
            missed.append(host)
    return missed


# --- the fast path's entry points: a decision (flow.prepare_rollback's dict) in, as for redis -----------
def _addresses(decided: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    return {i["host"]: (i["address"], int(i.get("port") or decided["port"])) for i in decided["after"]["instances"]}


def offsets_for(sessions: Runner, decided: Mapping[str, Any], timeout_s: float) -> dict[str, int]:
    """Every survivor's WAL position, for `prepare_rollback(offsets=...)`."""
    by_host = _addresses(decided)
    return read_offsets(sessions, {h: by_host[h] for h in decided["survivors"] if h in by_host}, timeout_s)


def fence_for(sessions: Runner, decided: Mapping[str, Any], *, unit: str, timeout_s: float) -> bool:
    """Fence the failed primary (best effort): the fast path does it before reading the positions, as
    rollback.yml does, so a primary that still runs cannot commit past the position the choice was made on."""
    return fence(sessions, str(decided["failed"]["address"]), unit, timeout_s)


def migrate_for(sessions: Runner, decided: Mapping[str, Any], *, timeout_s: float) -> list[str]:
    """Promote the target, repoint the rest (the old primary was fenced first): the replicas not repointed."""
    by_host = _addresses(decided)
    target = by_host[decided["target"]["host"]]
    return promote(sessions, target, {h: by_host[h] for h in decided["replicas"] if h in by_host}, timeout_s)
