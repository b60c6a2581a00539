"""Redis state on a switchover, straight from the controller: offsets, promote, repoint (the migrate phase)."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from depmirror.errors import DepmirrorError


class PromotionError(DepmirrorError):
    """A survivor did not take its new role."""


def _client(address: str, port: int, timeout_s: float) -> redis.Redis:
    return redis.Redis(host=address, port=port, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def _offset(address: str, port: int, timeout_s: float) -> int | None:
    try:
        info: Mapping[str, Any] = _client(address, port, timeout_s).info("replication")
    except (redis.RedisError, OSError):
        return None  # an unreachable survivor is no candidate; the decision says so
    key = "slave_repl_offset" if info.get("role") == "slave" else "master_repl_offset"
    value = info.get(key)
    return int(value) if value is not None else None


def read_offsets(survivors: Mapping[str, tuple[str, int]], timeout_s: float) -> dict[str, int]:
    """host -> replication offset, for the survivors that answered (in parallel: the primary is dead, they
    no longer move)."""
    with ThreadPoolExecutor(max_workers=max(1, len(survivors))) as pool:
        offsets = pool.map(lambda at: _offset(at[0], at[1], timeout_s), survivors.values())
        found = dict(zip(survivors, offsets, strict=True))
    return {host: offset for host, offset in found.items() if offset is not None}


def promote(target: tuple[str, int], replicas: Mapping[str, tuple[str, int]], timeout_s: float) -> list[str]:
    """REPLICAOF NO ONE on the target, REPLICAOF target on the replicas, CONFIG REWRITE everywhere so that a
    restart keeps the roles. Returns the replicas that could not be repointed (adjust repairs them)."""
    primary = _client(*target, timeout_s)
    try:
        primary.execute_command("REPLICAOF", "NO", "ONE")
        primary.execute_command("CONFIG", "REWRITE")
    except (redis.RedisError, OSError) as error:
        raise PromotionError(f"cannot promote {target[0]}:{target[1]}: {error}") from error
    missed = []
    for host, (address, port) in replicas.items():
        try:
            replica = _client(address, port, timeout_s)
            replica.execute_command("REPLICAOF", target[0], str(target[1]))
            replica.execute_command("CONFIG", "REWRITE")
        except (redis.RedisError, OSError):
            missed.append(host)
    return missed
