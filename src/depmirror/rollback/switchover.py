"""Switchovers carried out in-process, as one batch: decide, move the state, route on every LB, verify, record, fence.

The phases and the events are those of playbooks/rollback.yml (docs/rollback.md); only the transport differs.
Every switchover pending at the same moment goes in one batch (`switch_batch`): one read of the store and
one health query, decisions in order of weight, state moved in parallel (`_mover`: redis_state,
postgres_state, command_state; a database's old primary fenced before its positions are read), one nginx
release per load balancer carrying every switch, verification of all, one event per dependency sharing the
batch id. One dependency that is refused or fails never holds back the others. A single switchover is a
batch of one (`switchover`): what fails before the first change raises FastPathUnavailable, so the caller
can fall back to the playbook; a failure after it is recorded as a `failed` event (nothing is undone),
FastPathFailed. A state that cannot be moved is such a failure, never a fallback: nothing is routed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depmirror.errors import DepmirrorError
from depmirror.graph.load import load_graph
from depmirror.rollback import batch as shared
from depmirror.rollback import command_state, postgres_state
from depmirror.rollback.batch import BatchResult, HealthSource, SwitchOutcome
from depmirror.rollback.batch_release import LbRelease, ReleaseSpec, Transport, release_on, unroutable
from depmirror.rollback.decide import RollbackRefused
from depmirror.rollback.flow import Health, elapsed, host_of, inputs_of, prepare_rollback, running_dependencies
from depmirror.rollback.nginx import NginxOptions
from depmirror.rollback.redis_state import promote, read_offsets
from depmirror.rollback.remote import Sessions, SshOptions
from depmirror.rollback.traffic_check import check_traffic
from depmirror.views.upstreams import SHIFTED_ZONES_KEY

SWAP_SOURCE = Path("plugins/module_utils/nginx_swap.py")
TEMPLATES = Path("roles/nginx_upstream/templates")
# Threads for the per-dependency steps of a batch (offsets, promotions, traffic checks): each waits on the
# network, so more threads than cores; bounded so a zone of 1,000 does not open 1,000 sockets at once.
BATCH_THREADS = 32
FENCE_THREADS = 8


class FastPathUnavailable(DepmirrorError):
    """Nothing has changed; the playbook may still do the switchover."""


class FastPathFailed(DepmirrorError):
    """A phase after the decision failed (nothing is undone)."""

    def __init__(self, message: str, phase: str = "") -> None:
        super().__init__(message)
        self.phase = phase


class LeaseLost(DepmirrorError):
    """Another runner holds the dependency's lease now: stop before the next step (nothing after it ran)."""


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
    # PostgreSQL: how far behind the most advanced standby another may be and still be promoted (bytes of
    # WAL, rollback.yml's rollback_postgresql_max_lag_bytes), and each psql call's bound (pg_promote waits
    # up to this long for the standby to replay what it holds).
    postgres_max_lag_bytes: int = 0
    postgres_timeout_s: float = 10.0
    # A `stateful:` engine: the same, in the unit its `lag` command prints, and each command's bound.
    stateful_max_lag: int = 0
    stateful_timeout_s: float = 10.0
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
    # The dependency's health as the caller read it from Prometheus a moment ago (the runner's re-check of
    # the same batch): decided on as it is, instead of a second query. None: the batch's own query.
    health: Health | None = None


class FastPath:
    """`transport` carries releases to the LBs (default: warm SSH sessions); `health` answers the batch's
    health query (default: one `fetch_health` against the configured Prometheus)."""

    def __init__(
        self, config: FastPathConfig, *, transport: Transport | None = None, health: HealthSource | None = None
    ) -> None:
        self.config = config
        self.graph = load_graph(config.graph)
        self.swap_source = (config.collection / SWAP_SOURCE).read_text(encoding="utf-8")
        self.templates = config.collection / TEMPLATES
        self.sessions: Transport = transport or Sessions(config.ssh)
        self.health = health or shared.prometheus_health(
            self.graph,
            config.prometheus_url,
            token=config.prometheus_token,
            timeout=config.prometheus_timeout_s,
            interval=config.health_interval_s,
        )
        self._fences = ThreadPoolExecutor(max_workers=FENCE_THREADS, thread_name_prefix="fence")
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
        # Fences not started yet are dropped (best effort by design); running ones end within their timeout.
        self._fences.shutdown(wait=True, cancel_futures=True)
        self.sessions.close()

    def switchover(self, switch: Switch, record: bool = True) -> dict[str, Any]:
        """One switchover: a batch of one. The `rollback` event (appended to the history when `record`);
        raises what the batch recorded against it (RollbackRefused, FastPathUnavailable, FastPathFailed,
        LeaseLost). The runner passes record=False and appends one event itself, with its action journal."""
        outcome = self.switch_batch([switch], record).outcomes[0]
        if outcome.error is not None:
            raise outcome.error
        assert outcome.event is not None
        return outcome.event

    def switch_batch(self, switches: Sequence[Switch], record: bool = True) -> BatchResult:
        """Every switch, decided together and routed with one release per LB; outcomes in order of weight."""
        if len({s.dependency for s in switches}) != len(switches) or len({s.store for s in switches}) > 1:
            raise ValueError("a batch holds at most one switch per dependency, all on one store")
        run = _Run(self, switches, record)
        run.decide()
        run.migrate()
        run.route()
        run.verify()
        run.record()
        for name in run.succeeded():
            self._fence(name, run.decided[name]["failed"]["address"])
        return run.result()

    def _fence(self, dependency: str, address: str) -> None:
        """Stop and disable the failed instance where its host still answers; off the hot path."""
        unit = f"{self.config.unit_prefix}{dependency}.service"

        def fence() -> None:
            # A failed host that cannot be reached is expected; routing away from it was the fence.
            with contextlib.suppress(DepmirrorError):
                self.sessions.run(
                    address, f"systemctl stop {unit}; systemctl disable {unit}", timeout_s=self.config.fence_timeout_s
                )

        with contextlib.suppress(RuntimeError):  # closing: the fence is best effort
            self._fences.submit(fence)


class _Run:
    """One batch in progress: what was decided, and each dependency's outcome once it has one."""

    def __init__(self, fast: FastPath, switches: Sequence[Switch], record: bool) -> None:
        self.fast = fast
        self.config = fast.config
        self.record_events = record
        self.batch = shared.new_batch_id()
        self.started = time.time()
        self.order = shared.by_weight(fast.graph, [s.dependency for s in switches])
        self.switches = {s.dependency: s for s in switches}
        self.store = switches[0].store if switches else ""
        self.threshold = fast.graph.policy.health.unhealthy
        self.decided: dict[str, dict[str, Any]] = {}
        self.health: Mapping[str, Health] = {}
        self.offsets: dict[str, dict[str, int]] = {}
        # Survivors of a database whose position could not be read: no candidate (host -> why).
        self.unread: dict[str, dict[str, str]] = {}
        # Whether the failed primary of a database answered its fence (done before its positions are read).
        self.fenced: dict[str, bool] = {}
        self.outcomes: dict[str, SwitchOutcome] = {}
        self.timings: dict[str, float] = {}
        self.releases: dict[str, LbRelease] = {}
        self.verified: dict[str, list[dict[str, Any]]] = {}
        self.switched_at = 0.0
        # The dependencies decided on the caller's health (Switch.health) rather than the batch's own query.
        self.health_reused: list[str] = []

    # --- phases --------------------------------------------------------------------------------------
    def decide(self) -> None:
        mark = time.monotonic()
        given = {name: switch.health for name, switch in self.switches.items() if switch.health is not None}
        asked = [name for name in self.order if name not in given]
        try:
            current = running_dependencies(self.store)
            self.health = {**given, **(self.fast.health(asked) if asked else {})}
        except (DepmirrorError, OSError) as error:
            for name in self.order:
                self._unavailable(name, error)
            return
        by_name = {item["name"]: item for item in current}
        for name in self.order:
            # Its own entry is all a decision reads (the routing of the others is the release's business);
            # an unknown name gets the whole list, for the error that names what the plan has.
            self._decide(name, [by_name[name]] if name in by_name else current)
        # A database's old primary is fenced before its positions are read (rollback.yml's order): one that
        # still runs would otherwise commit past the position the choice is made on. A runner that lost the
        # lease fences nothing.
        stateful = [name for name in self._going() if _mover(self.decided[name]) in ("postgresql", "command")]
        self._drop_lost("fence", stateful)
        movable = [name for name in self._going() if _mover(self.decided[name]) is not None]
        if movable:
            # The most advanced survivor must be the target: read every survivor's offset (WAL position, or
            # minus its lag; in parallel, across dependencies), then decide those again with them.
            with ThreadPoolExecutor(max_workers=min(BATCH_THREADS, len(movable))) as pool:
                found = dict(zip(movable, pool.map(self._offsets_of, movable), strict=True))
            for name in movable:
                offsets = found[name]
                if isinstance(offsets, Exception):
                    self._failed(name, "decide", offsets)  # routing untouched, and not the playbook's
                    continue
                self.offsets[name] = offsets
                if name in stateful:
                    self.unread[name] = {
                        host: "its replication position could not be read (unreachable, or not a replica)"
                        for host in self.decided[name]["survivors"]
                        if host not in offsets
                    }
                del self.decided[name]
                self._decide(name, [by_name[name]])
        self.timings["decide_s"] = _lap(mark)
        self.health_reused = sorted(given)

    def migrate(self) -> None:
        mark = time.monotonic()
        self._drop_lost("migrate")
        movable = [name for name in self._going() if _mover(self.decided[name]) is not None]
        if movable:
            with ThreadPoolExecutor(max_workers=min(BATCH_THREADS, len(movable))) as pool:
                for name, problem in zip(movable, pool.map(self._promote, movable), strict=True):
                    if isinstance(problem, Exception):
                        # Nothing is routed: the load balancers keep sending to the failed primary (which
                        # fails), never to a standby that did not become a writer.
                        self._failed(name, "migrate", problem)
            self.timings["migrate_s"] = _lap(mark)

    def route(self) -> None:
        mark = time.monotonic()
        fast = self.fast
        # One batch renders at a time, from what the LBs route now: two batches at once must not each swap
        # in a release that lacks the other's switches.
        with fast._route_lock:
            self._drop_lost("route")
            going = self._going()
            if not going:
                return
            try:
                # Read once per batch: a switchover must not route traffic back into a shifted zone.
                shifted = shared.shifted_zones(self.store)
            except (DepmirrorError, OSError) as error:
                for name in going:
                    self._failed(name, "route", error)
                return
            spec = ReleaseSpec(
                templates=fast.templates,
                swap_source=fast.swap_source,
                routing={**dataclasses.asdict(fast.graph.policy.routing), SHIFTED_ZONES_KEY: shifted},
                unhealthy_below=self.threshold,
                options=self.config.nginx,
                timeout_s=self.config.swap_timeout_s,
            )
            afters = {name: self.decided[name]["after"] for name in going}
            for name, problem in unroutable(afters, spec).items():
                self._failed(name, "route", DepmirrorError(problem))
                del afters[name]
            try:
                current = running_dependencies(self.store)
            except (DepmirrorError, OSError) as error:
                for name in afters:
                    self._failed(name, "route", error)
                return
            balancers = list(fast.graph.load_balancers.items())
            if afters and balancers:

                def release(named: tuple[str, Any]) -> LbRelease:
                    try:
                        return release_on(named[0], named[1].address, fast.sessions, spec, current, afters)
                    except Exception as error:  # one LB's unexpected failure must not lose the batch's outcomes
                        return LbRelease(named[0], errors={n: f"{named[0]}: {error!r}" for n in afters})

                with ThreadPoolExecutor(max_workers=len(balancers)) as pool:
                    self.releases = {done.lb: done for done in pool.map(release, balancers)}
            routed = [name for name in afters if all(name in r.routed for r in self.releases.values())]
            for name in afters:
                if name not in routed:
                    why = "; ".join(r.errors[name] for r in self.releases.values() if name in r.errors)
                    self._failed(name, "route", DepmirrorError(why or "no load balancer routed it"))
            try:
                # The LBs route this way now, whoever records the events: the next batch renders from it.
                shared.record_routing_all(self.store, [afters[name] for name in routed])
            except (DepmirrorError, OSError) as error:
                for name in routed:
                    self._failed(name, "route", error)
        self.switched_at = time.time()
        self.timings["route_s"] = _lap(mark)

    def verify(self) -> None:
        mark = time.monotonic()
        checks = [(name, lb) for name in self._going() for lb in self.fast.graph.load_balancers.items()]
        if not checks:
            return
        with ThreadPoolExecutor(max_workers=min(BATCH_THREADS, len(checks))) as pool:
            results = list(pool.map(lambda check: self._check(*check), checks))
        for (name, (lb_name, _)), check in zip(checks, results, strict=True):
            self.verified.setdefault(name, []).append(check)
            if not check["ok"] and name not in self.outcomes:
                target = self.decided[name]["target"]["host"]
                problem = DepmirrorError(f"traffic through {lb_name} is not served by {target}: {check['detail']}")
                self._failed(name, "verify", problem)
        self.timings["verify_s"] = _lap(mark)

    def record(self) -> None:
        mark = time.monotonic()
        for name in self.succeeded():
            self.outcomes[name] = SwitchOutcome(name, "succeeded", event=self._event(name))
        if not self.record_events:
            return
        events = [o.event for o in self._ordered() if o.event is not None]
        try:
            stored = iter(shared.record_events(self.store, events))
        except (DepmirrorError, OSError) as error:
            for name in self.succeeded():
                self.outcomes[name] = SwitchOutcome(
                    name, "failed", error=FastPathFailed(f"the record phase failed: {error}", "record"), phase="record"
                )
            return
        for outcome in self._ordered():
            if outcome.event is not None:
                outcome.event = next(stored)
        self.timings["record_s"] = _lap(mark)

    def result(self) -> BatchResult:
        return BatchResult(
            batch=self.batch,
            outcomes=list(self._ordered()),
            timings=dict(self.timings),
            releases={lb: r.release for lb, r in self.releases.items() if r.release},
            reloads={lb: r.reloads for lb, r in self.releases.items()},
        )

    def succeeded(self) -> list[str]:
        """Decided and, so far, nothing went wrong for it."""
        return [
            name
            for name in self.order
            if name in self.decided and (name not in self.outcomes or self.outcomes[name].status == "succeeded")
        ]

    # --- one dependency ------------------------------------------------------------------------------
    def _decide(self, name: str, current: list[dict[str, Any]]) -> None:
        switch = self.switches[name]
        health = self._health_of(name)
        try:
            decided = prepare_rollback(
                current,
                name,
                switch.instance,
                health,
                unhealthy_below=self.threshold,
                candidates=switch.candidates,
                offsets=self.offsets.get(name),
                max_lag=self._max_lag(name),
            )
        except RollbackRefused as refused:
            self.outcomes[name] = SwitchOutcome(name, "refused", event=self._refusal(name, refused), error=refused)
            return
        except (DepmirrorError, OSError) as error:
            self._unavailable(name, error)
            return
        decided["started"] = self.started
        self.decided[name] = decided
        spec = self.fast.graph.dependencies.get(name)
        if spec is not None and spec.stateful and _mover(decided) is None:
            # Routing it without moving its state would send writes to a standby: recorded, nothing routed.
            problem = (
                f"the applied plan gives no way to move {name}'s state (kind {decided['kind']}, no stateful_commands)"
            )
            self._failed(name, "decide", DepmirrorError(f"{problem}; fix: run adjust.yml with the current graph"))

    def _health_of(self, name: str) -> Health:
        health = self.health.get(name) or Health({}, {}, [], [shared.NO_PROMETHEUS])
        unread = self.unread.get(name)
        return dataclasses.replace(health, excluded={**health.excluded, **unread}) if unread else health

    def _max_lag(self, name: str) -> int:
        spec = self.fast.graph.dependencies.get(name)
        if spec is not None and spec.kind == "postgresql":
            return self.config.postgres_max_lag_bytes
        if spec is not None and spec.state is not None:
            return self.config.stateful_max_lag
        return self.config.redis_max_lag_bytes

    def _offsets_of(self, name: str) -> dict[str, int] | Exception:
        """The survivors' offsets; a database's old primary fenced first. An exception: nothing may move."""
        decided, sessions, config = self.decided[name], self.fast.sessions, self.config
        try:
            mover = _mover(decided)
            if mover == "postgresql":
                unit = f"{config.unit_prefix}{name}.service"
                self.fenced[name] = postgres_state.fence_for(
                    sessions, decided, unit=unit, timeout_s=config.fence_timeout_s
                )
                return postgres_state.offsets_for(sessions, decided, config.postgres_timeout_s)
            if mover == "command":
                self.fenced[name] = command_state.fence_for(sessions, decided, timeout_s=config.fence_timeout_s)
                return command_state.offsets_for(sessions, decided, config.stateful_timeout_s)
            survivors = {
                i["host"]: (i["address"], int(i.get("port") or decided["port"]))
                for i in decided["after"]["instances"]
                if i["host"] in decided["survivors"]
            }
            return read_offsets(survivors, config.redis_timeout_s)
        except (DepmirrorError, OSError, ValueError) as error:
            return error

    def _promote(self, name: str) -> Exception | None:
        decided, sessions, config = self.decided[name], self.fast.sessions, self.config
        by_host = {
            i["host"]: (i["address"], int(i.get("port") or decided["port"])) for i in decided["after"]["instances"]
        }
        try:
            mover = _mover(decided)
            if mover == "postgresql":
                missed = postgres_state.migrate_for(sessions, decided, timeout_s=config.postgres_timeout_s)
            elif mover == "command":
                missed = command_state.migrate_for(sessions, decided, timeout_s=config.stateful_timeout_s)
            else:
                missed = promote(
                    by_host[decided["target"]["host"]],
                    {h: by_host[h] for h in decided["replicas"]},
                    config.redis_timeout_s,
                )
        except (DepmirrorError, OSError, ValueError) as error:
            return error
        if missed:
            decided.setdefault("warnings", []).append(f"not repointed (adjust repairs): {missed}")
        return None

    def _check(self, name: str, lb: tuple[str, Any]) -> dict[str, Any]:
        decided = self.decided[name]
        target, failed = decided["target"], decided["failed"]
        check = check_traffic(
            str(decided["kind"]),
            lb[1].address,
            int(decided["port"]),
            expect=f"{target['address']}:{target['port']}",
            forbid=f"{failed['address']}:{failed['port']}",
            requests=self.config.verify_requests,
            deadline_s=self.config.verify_deadline_s,
        )
        return check.to_dict()

    def _drop_lost(self, phase: str, names: Sequence[str] | None = None) -> None:
        """Asked of every dependency (or of `names`) right before `phase`: one whose lease passed to another
        runner drops out of the batch here (nothing of this phase runs for it; the lease holder decides again)."""
        for name in self._going() if names is None else names:
            still_mine = self.switches[name].still_mine
            if still_mine is not None and not still_mine():
                lost = LeaseLost(
                    f"this runner lost the lease on {name} before the {phase} phase; "
                    "the runner that holds it now decides again"
                )
                self.outcomes[name] = SwitchOutcome(name, "lease_lost", error=lost, phase=phase)

    def _going(self) -> list[str]:
        return [name for name in self.order if name in self.decided and name not in self.outcomes]

    def _ordered(self) -> list[SwitchOutcome]:
        return [self.outcomes[name] for name in self.order if name in self.outcomes]

    def _unavailable(self, name: str, error: Exception) -> None:
        problem = FastPathUnavailable(f"the fast path could not decide: {error}")
        self.outcomes[name] = SwitchOutcome(name, "unavailable", error=problem, phase="decide")

    def _failed(self, name: str, phase: str, error: Exception) -> None:
        problem = FastPathFailed(f"the {phase} phase of the fast switchover failed: {error}", phase)
        self.outcomes[name] = SwitchOutcome(
            name, "failed", event=self._failure(name, phase, error), error=problem, phase=phase
        )

    # --- events --------------------------------------------------------------------------------------
    def _details(self, name: str, **more: Any) -> dict[str, Any]:
        rank = self.order.index(name) + 1
        switch = self.switches[name]
        details = {
            "path": "fast",
            "action_id": switch.action_id,
            **shared.batch_details(self.batch, len(self.order), rank),
            **more,
        }
        if name in self.fenced:
            # A database's old primary was fenced before anything else: said in every outcome, a refusal too.
            details["fenced_first"] = self.fenced[name]
        return details

    def _event(self, name: str) -> dict[str, Any]:
        decided, switch = self.decided[name], self.switches[name]
        failed, target = decided["failed"]["host"], decided["target"]["host"]
        return {
            "kind": "rollback",
            "dependency": name,
            "outcome": "succeeded",
            "instance": failed,
            "target": target,
            "action": "switchover",
            "trigger": switch.trigger,
            "inputs": decided["inputs"],
            "decision": f"{target} is the primary of {name}; {failed} is fenced out of every upstream",
            "reason": decided["reason"],
            "duration_s": elapsed(decided["started"]),
            "set_primary": target,
            "details": self._details(
                name,
                candidates=decided["decision"]["candidates"],
                traffic=self.verified.get(name, []),
                releases={lb: r.release for lb, r in self.releases.items() if r.release},
                switched_at=self.switched_at,
                timings=dict(self.timings),
                health_reused=name in self.health_reused,
                warnings=decided.get("warnings", []),
                fence="the failed instance is out of every upstream; stopping it on its host follows, best effort",
            ),
        }

    def _failure(self, name: str, phase: str, error: Exception) -> dict[str, Any]:
        decided, switch = self.decided[name], self.switches[name]
        return {
            "kind": "rollback",
            "dependency": name,
            "outcome": "failed",
            "instance": decided["failed"]["host"],
            "target": decided["target"]["host"],
            "action": "switchover",
            "trigger": switch.trigger,
            "inputs": decided["inputs"],
            "decision": decided["reason"],
            "reason": f"the {phase} phase failed: {error}",
            "duration_s": elapsed(decided["started"]),
            "details": self._details(name, phase=phase),
        }

    def _refusal(self, name: str, refused: RollbackRefused) -> dict[str, Any]:
        switch = self.switches[name]
        health = self._health_of(name)
        offsets = self.offsets.get(name)
        return {
            "kind": "refused",
            "dependency": name,
            "outcome": "refused",
            "instance": host_of(name, switch.instance),
            "action": "rollback",
            "trigger": dict(switch.trigger),
            "inputs": inputs_of(health, offsets, self._max_lag(name), self.threshold, list(switch.candidates) or None),
            "decision": "refuse",
            "reason": refused.decision.reason,
            "duration_s": elapsed(self.started),
            "details": self._details(name, decision=refused.decision.to_dict()),
        }


def _mover(decided: Mapping[str, Any]) -> str | None:
    """How a dependency's state moves: its kind's mover, `command` for a `stateful:` engine, None: nothing to move."""
    if decided["kind"] in ("redis", "postgresql"):
        return str(decided["kind"])
    return "command" if command_state.applies(decided) else None


def _lap(mark: float) -> float:
    return round(time.monotonic() - mark, 3)
