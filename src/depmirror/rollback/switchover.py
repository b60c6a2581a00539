"""A switchover carried out in-process: decide, promote (redis), swap nginx on every LB, verify, record, fence.

The phases and the events are those of playbooks/rollback.yml (docs/rollback.md); only the transport differs.
Anything that fails before the first change raises FastPathUnavailable, so the caller can fall back to the
playbook; a failure after it is recorded as a `failed` event (nothing is undone) and raised as FastPathFailed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depmirror.errors import DepmirrorError
from depmirror.fleet.rollback_history import record_event
from depmirror.graph.load import load_graph
from depmirror.rollback.decide import RollbackRefused
from depmirror.rollback.flow import SwitchoverRequest, decide_rollback, elapsed, record_routing, running_dependencies
from depmirror.rollback.nginx import NginxOptions, render_release
from depmirror.rollback.redis_state import promote, read_offsets
from depmirror.rollback.remote import Sessions, SshOptions
from depmirror.rollback.traffic_check import check_traffic

SWAP_SOURCE = Path("plugins/module_utils/nginx_swap.py")
TEMPLATES = Path("roles/nginx_upstream/templates")


class FastPathUnavailable(DepmirrorError):
    """Nothing has changed; the playbook may still do the switchover."""


class FastPathFailed(DepmirrorError):
    """A phase after the decision failed (nothing is undone)."""

    def __init__(self, message: str, phase: str = "") -> None:
        super().__init__(message)
        self.phase = phase


@dataclass(frozen=True, slots=True)
class FastPathConfig:
    graph: Path
    collection: Path  # the collection's root: the role's templates and the swap's module_utils live there
    prometheus_url: str | None = None
    prometheus_token: str | None = field(default=None, repr=False)
    prometheus_timeout_s: float = 2.0
    health_interval_s: float = 5.0
    ssh: SshOptions = field(default_factory=SshOptions)
    nginx: NginxOptions = field(default_factory=NginxOptions)
    verify_requests: int = 5
    verify_deadline_s: float = 3.0
    redis_max_lag_bytes: int = 0
    redis_timeout_s: float = 1.0
    swap_timeout_s: float = 10.0
    fence_timeout_s: float = 3.0
    unit_prefix: str = "depmirror-"


@dataclass(frozen=True, slots=True)
class Switch:
    dependency: str
    instance: str
    store: str
    candidates: tuple[str, ...] = ()
    trigger: dict[str, Any] = field(default_factory=dict)
    action_id: str | None = None
    # Whether the caller still holds the dependency's lease (several runners on one store): asked right
    # before the state promotion and before the routing; a runner that lost it stops there.
    still_mine: Callable[[], bool] | None = None


class FastPath:
    def __init__(self, config: FastPathConfig) -> None:
        self.config = config
        self.graph = load_graph(config.graph)
        self.swap_source = (config.collection / SWAP_SOURCE).read_text(encoding="utf-8")
        self.templates = config.collection / TEMPLATES
        self.sessions = Sessions(config.ssh)
        self.fences: list[threading.Thread] = []
        self._route_lock = threading.Lock()

    def warm(self) -> list[str]:
        """Open the SSH session to every LB now; the problems, for the log (a switchover retries)."""
        problems = []
        for lb in self.graph.load_balancers.values():
            try:
                self.sessions.warm(lb.address)
            except DepmirrorError as error:
                problems.append(str(error))
        return problems

    def close(self) -> None:
        for fence in self.fences:
            fence.join(self.config.fence_timeout_s + self.config.ssh.connect_timeout_s + 1)
        self.sessions.close()

    def _request(self, switch: Switch, offsets: dict[str, int] | None = None) -> SwitchoverRequest:
        c = self.config
        return SwitchoverRequest(
            graph=str(c.graph),
            store=switch.store,
            dependency=switch.dependency,
            instance=switch.instance,
            prometheus_url=c.prometheus_url,
            prometheus_token=c.prometheus_token,
            prometheus_timeout=c.prometheus_timeout_s,
            health_interval=c.health_interval_s,
            candidates=switch.candidates,
            offsets=offsets,
            max_lag=c.redis_max_lag_bytes,
            trigger=switch.trigger,
            action_id=switch.action_id,
        )

    def switchover(self, switch: Switch, record: bool = True) -> dict[str, Any]:
        """The `rollback` event (appended to the history when `record`), RollbackRefused when no instance may
        take over. The runner passes record=False and appends one event itself, with its action journal."""
        timings: dict[str, float] = {}
        mark = time.monotonic()
        try:
            decided = decide_rollback(self._request(switch), record_refusal=record)
            if decided["kind"] == "redis":
                survivors = {
                    i["host"]: (i["address"], int(i.get("port") or decided["port"]))
                    for i in decided["after"]["instances"]
                    if i["host"] in decided["survivors"]
                }
                offsets = read_offsets(survivors, self.config.redis_timeout_s)
                decided = decide_rollback(self._request(switch, offsets), record_refusal=record)
        except RollbackRefused:
            raise
        except (DepmirrorError, OSError) as error:
            raise FastPathUnavailable(f"the fast path could not decide: {error}") from error
        timings["decide_s"] = _lap(mark)
        phase = "migrate"
        try:
            _fenced(switch, phase)
            if decided["kind"] == "redis":
                mark = time.monotonic()
                by_host = {
                    i["host"]: (i["address"], int(i.get("port") or decided["port"]))
                    for i in decided["after"]["instances"]
                }
                missed = promote(
                    by_host[decided["target"]["host"]],
                    {h: by_host[h] for h in decided["replicas"]},
                    self.config.redis_timeout_s,
                )
                timings["migrate_s"] = _lap(mark)
                if missed:
                    decided.setdefault("warnings", []).append(f"not repointed (adjust repairs): {missed}")
            phase, mark = "route", time.monotonic()
            _fenced(switch, phase)
            releases = self._route(switch.store, decided)
            switched_at = time.time()
            timings["route_s"] = _lap(mark)
            phase, mark = "verify", time.monotonic()
            traffic = self._verify(decided)
            timings["verify_s"] = _lap(mark)
        except (DepmirrorError, OSError) as error:
            if record:
                self._record_failure(switch, decided, phase, error)
            raise FastPathFailed(f"the {phase} phase of the fast switchover failed: {error}", phase) from error
        mark = time.monotonic()
        event = {
            "kind": "rollback",
            "dependency": switch.dependency,
            "outcome": "succeeded",
            "instance": decided["failed"]["host"],
            "target": decided["target"]["host"],
            "action": "switchover",
            "trigger": switch.trigger,
            "inputs": decided["inputs"],
            "decision": f"{decided['target']['host']} is the primary of {switch.dependency}; "
            f"{decided['failed']['host']} is fenced out of every upstream",
            "reason": decided["reason"],
            "duration_s": elapsed(decided["started"]),
            "set_primary": decided["target"]["host"],
            "details": {
                "path": "fast",
                "action_id": switch.action_id,
                "candidates": decided["decision"]["candidates"],
                "traffic": traffic,
                "releases": releases,
                "switched_at": switched_at,
                "timings": timings,
                "warnings": decided.get("warnings", []),
                "fence": "the failed instance is out of every upstream; stopping it on its host follows, best effort",
            },
        }
        if record:
            event = record_event(switch.store, event)
        timings["record_s"] = _lap(mark)
        self._fence(switch.dependency, decided["failed"]["address"])
        return event

    def _route(self, store: str, decided: dict[str, Any]) -> dict[str, str]:
        # One switchover renders at a time, from what the LBs route now: two dependencies switched at once
        # must not each swap in a release that lacks the other's switch.
        with self._route_lock:
            after = decided["after"]
            dependencies = [after if d["name"] == after["name"] else d for d in running_dependencies(store)]
            releases = self._swap_all(dependencies)
            # The LBs route this way now, whoever records the event: the next switchover renders from it.
            record_routing(store, decided["after"])
        return releases

    def _swap_all(self, dependencies: list[dict[str, Any]]) -> dict[str, str]:
        routing = dataclasses.asdict(self.graph.policy.routing)
        unhealthy_below = self.graph.policy.health.unhealthy
        balancers = list(self.graph.load_balancers.items())

        def swap(named: tuple[str, Any]) -> tuple[str, str]:
            name, lb = named
            release = render_release(
                self.templates, dependencies, routing, unhealthy_below, lb.address, self.config.nginx
            )
            self.sessions.swap_release(
                lb.address, self.swap_source, release.swap_params(self.config.nginx), self.config.swap_timeout_s
            )
            return name, release.release

        with ThreadPoolExecutor(max_workers=max(1, len(balancers))) as pool:
            return dict(pool.map(swap, balancers))

    def _verify(self, decided: dict[str, Any]) -> list[dict[str, Any]]:
        target, failed = decided["target"], decided["failed"]
        checks = []
        for name, lb in self.graph.load_balancers.items():
            check = check_traffic(
                str(decided["kind"]),
                lb.address,
                int(decided["port"]),
                expect=f"{target['address']}:{target['port']}",
                forbid=f"{failed['address']}:{failed['port']}",
                requests=self.config.verify_requests,
                deadline_s=self.config.verify_deadline_s,
            )
            checks.append(check.to_dict())
            if not check.ok:
                raise FastPathFailed(
                    f"traffic through {name} is not served by {target['host']}: {check.detail}", "verify"
                )
        return checks

    def _record_failure(self, switch: Switch, decided: dict[str, Any], phase: str, error: Exception) -> None:
        record_event(
            switch.store,
            {
                "kind": "rollback",
                "dependency": switch.dependency,
                "outcome": "failed",
                "instance": decided["failed"]["host"],
                "target": decided["target"]["host"],
                "action": "switchover",
                "trigger": switch.trigger,
                "inputs": decided["inputs"],
                "decision": decided["reason"],
                "reason": f"the {phase} phase failed: {error}",
                "duration_s": elapsed(decided["started"]),
                "details": {"path": "fast", "action_id": switch.action_id, "phase": phase},
            },
        )

    def _fence(self, dependency: str, address: str) -> None:
        """Stop and disable the failed instance where its host still answers; off the hot path."""
        unit = f"{self.config.unit_prefix}{dependency}.service"

        def fence() -> None:
            # A failed host that cannot be reached is expected; routing away from it was the fence.
            with contextlib.suppress(DepmirrorError):
                self.sessions.run(
                    address, f"systemctl stop {unit}; systemctl disable {unit}", timeout_s=self.config.fence_timeout_s
                )

        thread = threading.Thread(target=fence, name=f"fence-{dependency}", daemon=True)
        thread.start()
        self.fences = [t for t in self.fences if t.is_alive()] + [thread]


def _lap(mark: float) -> float:
    return round(time.monotonic() - mark, 3)


def _fenced(switch: Switch, phase: str) -> None:
    if switch.still_mine is not None and not switch.still_mine():
        raise LeaseLost(
            f"this runner lost the lease on {switch.dependency} before the {phase} phase; "
            "the runner that holds it now decides again"
        )


class LeaseLost(DepmirrorError):
    """Another runner holds the dependency's lease now: stop before the next step (nothing after it ran)."""
