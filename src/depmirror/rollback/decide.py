"""Choosing where traffic goes when a primary fails, and what the upstreams look like afterwards.

The rules: the target is a healthy instance of the same dependency (health known and at or above the
threshold: unknown is never a target), in another zone than the failed primary when one is healthy enough,
then the healthiest, then by name so that the same inputs give the same answer. No target: refuse.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from depmirror.errors import DepmirrorError

STANDBY_ROLE = {"active-passive": "standby", "active-active": "mirror"}


class RollbackRefused(DepmirrorError):
    """No instance may take over; nothing was changed. The decision says why, per candidate."""

    def __init__(self, decision: RollbackDecision) -> None:
        self.decision = decision
        super().__init__(decision.reason)


@dataclass(frozen=True, slots=True)
class Candidate:
    host: str
    zone: str | None
    address: str | None
    port: int
    role: str
    health: float | None
    eligible: bool
    why: str


@dataclass(frozen=True, slots=True)
class RollbackDecision:
    dependency: str
    failed: str
    target: Candidate | None
    candidates: tuple[Candidate, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "dependency": self.dependency,
            "failed": self.failed,
            "target": None if self.target is None else asdict(self.target),
            "candidates": [asdict(c) for c in self.candidates],
            "reason": self.reason,
        }


def choose_target(
    item: dict[str, Any],
    failed: str,
    unhealthy_below: float = 0.5,
    *,
    only: Collection[str] | None = None,
    excluded: Mapping[str, str] | None = None,
) -> RollbackDecision:
    """`item` is one of the plan's dependencies (instances carry `health`); `failed` is the failed host.

    `only`: the hosts someone already verified (the runner's healthy candidates); the others are not
    targets. `excluded`: hosts that may not take over for another reason, with why (a degraded verdict,
    a redis replica too far behind).
    """
    name = item["name"]
    instances = {i["host"]: i for i in item.get("instances", [])}
    failed_zone = instances.get(failed, {}).get("zone")
    candidates = tuple(
        _excluded(_candidate(i, unhealthy_below), only, excluded or {})
        for h, i in sorted(instances.items())
        if h != failed
    )
    eligible = [c for c in candidates if c.eligible]
    if not eligible:
        seen = "; ".join(f"{c.host}: {c.why}" for c in candidates) or "it has no other instance"
        reason = f"no healthy instance of {name} can take over from {failed} ({seen})"
        raise RollbackRefused(RollbackDecision(name, failed, None, candidates, reason))
    best = min(eligible, key=lambda c: (c.zone == failed_zone and failed_zone is not None, -(c.health or 0.0), c.host))
    where = "another zone" if best.zone != failed_zone else "the same zone (no healthy instance elsewhere)"
    reason = f"{best.host} in {where}, health {best.health:.2f}, takes over from {failed}"
    return RollbackDecision(name, failed, best, candidates, reason)


def switched(item: dict[str, Any], decision: RollbackDecision) -> dict[str, Any]:
    """The dependency after the switchover: the target is primary, the failed instance is fenced out."""
    if decision.target is None:
        raise ValueError("switched() needs a decision with a target")
    target = decision.target
    return with_primary(item, target.host, address=target.address, port=target.port, without=decision.failed)


def with_primary(
    item: dict[str, Any], host: str, *, address: str | None, port: int, without: str | None = None
) -> dict[str, Any]:
    """The one primary-swap rule for a plan's dependency: `host` becomes primary, the old primary stays as a
    standby (active-passive) or a mirror (active-active), and `without` leaves the instances."""
    after = copy.deepcopy(item)
    after["instances"] = [i for i in after.get("instances", []) if i["host"] != without]
    demoted = STANDBY_ROLE.get(item.get("mode", ""), "mirror")
    for instance in after["instances"]:
        if instance["host"] == host:
            instance["role"] = "primary"
        elif instance["role"] == "primary":
            instance["role"] = demoted
    after["primary"] = {"host": host, "address": address, "port": port}
    return after


def _excluded(candidate: Candidate, only: Collection[str] | None, excluded: Mapping[str, str]) -> Candidate:
    if not candidate.eligible:
        return candidate
    if only is not None and candidate.host not in only:
        return dataclasses.replace(candidate, eligible=False, why="not among the verified candidates")
    if candidate.host in excluded:
        return dataclasses.replace(candidate, eligible=False, why=excluded[candidate.host])
    return candidate


def _candidate(instance: dict[str, Any], unhealthy_below: float) -> Candidate:
    health = instance.get("health")
    if health is None:
        eligible, why = False, "health unknown (no data or Prometheus unreachable)"
    elif health < unhealthy_below:
        eligible, why = False, f"unhealthy ({health:.2f} < {unhealthy_below})"
    else:
        eligible, why = True, f"healthy ({health:.2f})"
    return Candidate(
        host=instance["host"],
        zone=instance.get("zone"),
        address=instance.get("address"),
        port=int(instance.get("port") or 0),
        role=instance["role"],
        health=health,
        eligible=eligible,
        why=why,
    )
