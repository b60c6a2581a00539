"""Reconciliation: the runner runs the adjust loop by itself (issue 21, docs/runner.md "Reconciliation").

On a schedule (`reconcile.interval_seconds`), right after each of this runner's switchovers, and within a
second of any switchover, failback, zonal shift or override the store records (whoever made it), the plan is
computed from the store and Prometheus and compared with the applied plan (`fleet.plan_diff`, the same
comparison `adjust` records). When they differ, one adjust is launched through the configured frontend, for
the hosts that change and every load balancer, and one `reconcile` event per changed dependency records the
diff acted on and the outcome.

Rules, in order: one pass at a time in this runner, and one adjust at a time across runners (the store lease
`depmirror:reconcile`); at most one launch per `min_gap_seconds` (read from the history, so it holds across
runners and restarts; a failed adjust is retried only after it); nothing while Prometheus cannot be read;
dependencies under a frozen, manual or shadow override are left alone (and so is anything an adjust could
not apply without touching them); shadow mode records what would be done and launches nothing; and every
dependency of the plan is leased for the adjust's duration, so it never runs beside a switchover (an adjust
renders every upstream: a switchover running beside it would be undone, and its primary overwritten).

Each pass is counted on the runner's /metrics (`depmirror_reconcile_*`, runner/metrics.py), with the time of
the last one that did all the rules allow and how many dependencies still differ, so that an alert catches a
loop that stopped working (docs/runner.md, "Reconciliation metrics").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from depmirror.errors import DepmirrorError
from depmirror.fleet.overrides import effective
from depmirror.fleet.plan_diff import DependencyChange, PlanDiff, plan_diff
from depmirror.runner.actions import ActionResult
from depmirror.runner.config import RunnerConfig
from depmirror.runner.leases import DependencyLease
from depmirror.runner.metrics import ReconcileMetrics, RunnerMetrics, change_kind, pass_outcome
from depmirror.runner.reconcile_frontends import AdjustRequest, Frontend, build_frontend
from depmirror.runner.store_caller import StoreCaller
from depmirror.store.factory import open_store
from depmirror.store.model import Event, EventFilter, Override

log = logging.getLogger("depmirror.runner")
LEASE = "depmirror:reconcile"  # never a dependency's name: the graph's names have no ':'
# What the store records that can change the plan: a pass follows within WATCH_S of any of them.
WATCHED = ("rollback", "failback", "zonal_shift", "zonal_shift_end", "override", "override_end")
WATCH_S = 1.0
# How long to wait before trying again when a switchover holds a dependency or another runner reconciles.
BUSY_RETRY_S = 0.5
# Override rollback modes under which reconciliation leaves a dependency as it is.
HANDS_OFF = ("frozen", "manual", "shadow")
RECENT = 50


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one pass did: `launched` an adjust, or why not (`nothing`, `shadow`, `held`, `skipped`).
    `cause`: the adjust's outcome when launched; why, in one word, when skipped (metrics.SKIPPED names them)."""

    outcome: str
    reason: str = ""
    events: tuple[Event, ...] = ()
    retry_in_s: float | None = None
    cause: str = ""


@dataclass(frozen=True, slots=True)
class Split:
    acting: tuple[DependencyChange, ...]
    held: dict[str, str] = field(default_factory=dict)  # dependency -> why it waits


def split_changes(diff: PlanDiff, modes: Mapping[str, str], *, whole_plan: bool) -> Split:
    """Which changes an adjust may apply now. A dependency whose override mode is hands-off waits; so does
    any change that shares a host with one (an adjust applies a host's whole plan); and with a frontend that
    applies the whole plan (pyinfra), every change waits while one does. Pure."""
    held = {c.dependency: f"rollback {modes[c.dependency]} (override)" for c in diff.changes if c.dependency in modes}
    hands_off_hosts = {h: c.dependency for c in diff.changes if c.dependency in held for h in c.hosts}
    for change in diff.changes:
        if change.dependency in held:
            continue
        if whole_plan and hands_off_hosts:
            held[change.dependency] = (
                f"the adjust applies the whole plan and would change {', '.join(sorted(set(held)))} too"
            )
            continue
        shared = sorted(h for h in change.hosts if h in hands_off_hosts)
        if shared:
            held[change.dependency] = f"shares {shared[0]} with {hands_off_hosts[shared[0]]} (held)"
    return Split(tuple(c for c in diff.changes if c.dependency not in held), held)


def hands_off(overrides: Iterable[Override], dependencies: Iterable[str], now: datetime) -> dict[str, str]:
    """dependency -> its rollback mode, for those whose override in force keeps reconciliation off."""
    chosen = list(overrides)
    found = {}
    for name in dependencies:
        setting = effective(chosen, name, now).get("rollback")
        if setting is not None and setting[0] in HANDS_OFF:
            found[name] = str(setting[0])
    return found


def decision_text(change: DependencyChange) -> str:
    """One line a person reads: what the adjust does for this dependency."""
    parts = [f"{a['action']} {a['host']}" + (f" ({a['role']})" if a.get("role") else "") for a in change.actions]
    old, new = change.before or {}, change.after or {}
    if old.get("replication_factor") != new.get("replication_factor"):
        parts.insert(0, f"replication factor {old.get('replication_factor')} -> {new.get('replication_factor')}")
    if old.get("primary") != new.get("primary") and new.get("primary"):
        parts.append(f"primary {old.get('primary')} -> {new.get('primary')}")
    if not parts:
        parts.append("roles " + ", ".join(change.hosts))
    return "adjust: " + "; ".join(parts)


class Reconciler:
    def __init__(
        self,
        config: RunnerConfig,
        db: StoreCaller,
        frontend: Frontend,
        *,
        wake_worker: Callable[[], None] = lambda: None,
        diff: Callable[[], PlanDiff] | None = None,
        metrics: ReconcileMetrics | None = None,
    ) -> None:
        self.config = config
        self.settings = config.reconcile
        self.db = db
        self.frontend = frontend
        # Without the runner's (tests, a reconciler on its own), a registry of its own: counted all the same.
        self.metrics = metrics or ReconcileMetrics(frontend.name)
        self.wake_worker = wake_worker
        self.diff = diff or self._plan_diff
        self.holder = f"{config.runner_id}/reconcile"
        self._poked = asyncio.Event()
        self._why = "schedule"
        self._lock = asyncio.Lock()
        self._cursor: int | None = None
        self._recorded: dict[str, str] = {}  # dependency -> digest of the last non-acting event recorded

    def poke(self, why: str) -> None:
        """Ask for a pass now (after a switchover, a shift, an override): it runs as soon as the rules let it."""
        if not self._poked.is_set():  # the first reason stands: the watch also sees this runner's own events
            self._why = why
        self._poked.set()

    # --- the loop -----------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        due = time.monotonic()  # a first pass at start: the fleet may have drifted while no runner ran
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await self._watch()
            if self._poked.is_set() or time.monotonic() >= due:
                why = self._why if self._poked.is_set() else "schedule"
                self._poked.clear()
                self._why = "schedule"
                try:
                    result = await self.reconcile(why)
                except Exception:  # a bug or a store outage must not end the loop; the next pass tries again
                    log.exception("reconciliation pass failed")
                    result = PassResult("skipped", "error", retry_in_s=self.settings.interval_s, cause="error")
                due = time.monotonic() + (result.retry_in_s or self.settings.interval_s)
            wait = max(0.05, min(WATCH_S, due - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop, self._poked), wait)

    async def _watch(self) -> None:
        """Poke when the store recorded something that can change the plan since the last look."""
        newest = await self.db(self.db.store.events, EventFilter(limit=1))
        top = newest[0].id if newest else 0
        if self._cursor is None:
            self._cursor = top
            return
        if top and top > self._cursor:
            found = await self.db(self.db.store.events, EventFilter(kinds=WATCHED, after_id=self._cursor, limit=1))
            self._cursor = top
            if found:
                self.poke(f"{found[0].kind} of {found[0].dependency}")

    # --- one pass -----------------------------------------------------------------------------------
    async def reconcile(self, why: str) -> PassResult:
        async with self._lock:
            try:
                result = await self._pass(why)
            except Exception:
                self.metrics.passed("error", time.time())
                raise
            self.metrics.passed(pass_outcome(result.outcome, result.cause), time.time())
            return result

    async def _pass(self, why: str) -> PassResult:
        # Across runners, the whole check-then-act is one: the gap and the diff are read under the lease, so a
        # runner that waited for another's adjust sees that adjust in the history and in the applied plan.
        lease = await DependencyLease.acquire(self.db, LEASE, self.config.runner_id, self.config.policy.lease_s)
        if lease is None:
            return PassResult("skipped", "another runner reconciles", retry_in_s=BUSY_RETRY_S, cause="lease")
        lease.keep()
        try:
            return await self._decide(why)
        finally:
            await lease.release()

    async def _decide(self, why: str) -> PassResult:
        wait = await self._rate_limited()
        if wait is not None:
            return PassResult("skipped", f"rate limit: next launch in {wait:.0f}s", retry_in_s=wait, cause="gap")
        try:
            diff = await asyncio.to_thread(self.diff)
        except DepmirrorError as error:  # a graph or store the operator must fix: said once per pass, no event
            log.error("reconciliation cannot plan: %s", error)
            return PassResult("skipped", f"cannot plan: {error}", cause="plan")
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            # The store's applied-plan record is not what adjust writes (edited by hand, or another version).
            problem = f"the store's applied plan is malformed ({type(error).__name__}: {str(error)[:200]})"
            log.error("reconciliation cannot plan: %s; fix: run adjust once by hand", problem)
            return PassResult("skipped", f"cannot plan: {problem}", cause="plan")
        if diff.health_unknown:
            log.warning("reconciliation waits: %s", diff.warnings[0] if diff.warnings else "health unknown")
            return PassResult("skipped", "Prometheus cannot be read: health unknown", cause="prometheus")
        if not diff.changes:
            self.metrics.differing()
            return PassResult("nothing", "the plan is applied")
        now = datetime.now(UTC)
        overrides = await self.db(self.db.store.overrides, now)
        modes = hands_off(overrides, [c.dependency for c in diff.changes], now)
        split = split_changes(diff, modes, whole_plan=self.frontend.whole_plan)
        trigger = {"type": "reconcile", "why": why, "runner_id": self.config.runner_id}
        if self.config.mode == "shadow":
            self.metrics.differing(shadow=len(diff.changes))
            events = [self._event(c, "shadow", "shadow mode: would launch the adjust", trigger) for c in diff.changes]
            return PassResult("shadow", "shadow mode", tuple(await self._record_once(events)))
        self.metrics.differing(actionable=len(split.acting), held=len(split.held))
        waiting = [c for c in diff.changes if c.dependency in split.held]
        held = [self._event(c, "held", f"held: {split.held[c.dependency]}", trigger) for c in waiting]
        if not split.acting:
            return PassResult("held", "every change is held", tuple(await self._record_once(held)))
        return await self._launch(diff, split, trigger, held)

    async def _launch(self, diff: PlanDiff, split: Split, trigger: dict[str, Any], held: list[Event]) -> PassResult:
        leases: list[DependencyLease] = []
        try:
            for name in diff.dependencies:
                taken = await DependencyLease.acquire(self.db, name, self.holder, self.config.policy.lease_s)
                if taken is None:
                    why = f"a switchover of {name} runs"
                    return PassResult("skipped", why, retry_in_s=BUSY_RETRY_S, cause="switchover")
                taken.keep()
                leases.append(taken)
            limit = () if self.frontend.whole_plan else tuple(sorted({*_hosts(split.acting), *diff.load_balancers}))
            reconcile_id = uuid.uuid4().hex
            log.info("reconciling %s through %s", ", ".join(c.dependency for c in split.acting), self.frontend.name)
            began = time.monotonic()
            try:
                result = await self.frontend.adjust(AdjustRequest(reconcile_id, limit))
            except Exception as error:  # a bug in a frontend is a failed adjust, recorded like any other
                log.exception("the %s adjust raised", self.frontend.name)
                result = ActionResult(outcome="failed", detail=f"adjust raised {type(error).__name__}: {error}")
            duration = round(time.monotonic() - began, 3)
            self.metrics.adjusted(result.outcome, duration, [change_kind(c) for c in split.acting])
            if result.outcome == "succeeded":  # what it applied differs no more; the next diff says for sure
                self.metrics.differing(held=len(split.held))
            details = {
                "reconcile_id": reconcile_id,
                "frontend": self.frontend.name,
                "limit": list(limit) or "all hosts (the frontend applies the whole plan)",
                "external_id": result.external_id,
                "launched": True,
                **result.details,
            }
            events = []
            for change in split.acting:
                event = self._event(change, result.outcome, result.detail, trigger, details)
                events.append(await self.db(self.db.store.append_event, _timed(event, duration)))
            if result.outcome != "succeeded":
                log.error("reconciliation's adjust %s: %s", result.outcome, result.detail)
            events += await self._record_once(held)
            return PassResult("launched", result.detail, tuple(events), cause=result.outcome)
        finally:
            for taken in leases:
                await taken.release()
            self.wake_worker()  # alerts that waited for the leases go now

    async def _rate_limited(self) -> float | None:
        """Seconds until the next launch is allowed, or None: the last launch (any runner's) ended long enough ago."""
        if self.settings.min_gap_s <= 0:
            return None
        recent = await self.db(self.db.store.events, EventFilter(kinds=("reconcile",), limit=RECENT))
        last = next((e for e in recent if e.details.get("launched")), None)
        if last is None:
            return None
        left = self.settings.min_gap_s - (datetime.now(UTC) - last.time).total_seconds()
        return left if left > 0 else None

    async def _record_once(self, events: list[Event]) -> list[Event]:
        """Record non-acting events (shadow, held) once per distinct diff, not on every pass."""
        stored = []
        for event in events:
            digest = _digest(event)
            if self._recorded.get(event.dependency) == digest:
                continue
            self._recorded[event.dependency] = digest
            stored.append(await self.db(self.db.store.append_event, event))
        return stored

    def _event(
        self,
        change: DependencyChange,
        outcome: str,
        reason: str,
        trigger: dict[str, Any],
        details: dict[str, Any] | None = None,
    ) -> Event:
        return Event(
            kind="reconcile",
            dependency=change.dependency,
            outcome=outcome,
            action="adjust",
            trigger=trigger,
            decision=decision_text(change),
            reason=reason,
            details={"diff": change.as_dict(), **(details or {"launched": False})},
        )

    def _plan_diff(self) -> PlanDiff:
        settings = self.settings
        assert settings.graph is not None
        return plan_diff(
            settings.graph,
            store=self.config.store,
            prometheus_url=settings.prometheus_url or None,
            prometheus_token=_prometheus_token(self.config),
            prometheus_timeout=settings.prometheus_timeout_s,
        )


def _prometheus_token(config: RunnerConfig) -> str | None:
    """The fast path's Prometheus token when it has one (the same Prometheus), else the environment's."""
    fast = config.action.fast_path
    return (fast.prometheus_token if fast is not None else None) or os.environ.get("DEPMIRROR_PROMETHEUS_TOKEN")


def _hosts(changes: Iterable[DependencyChange]) -> set[str]:
    return {h for c in changes for h in c.hosts}


def _timed(event: Event, duration: float) -> Event:
    """Stamped when the adjust ended: the rate limit counts from there."""
    return dataclasses.replace(event, duration_s=duration, time=datetime.now(UTC))


def _digest(event: Event) -> str:
    text = json.dumps([event.outcome, event.reason, event.details.get("diff")], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def _first(stop: asyncio.Event, poked: asyncio.Event) -> None:
    """Until either is set."""
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(poked.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def reconciler_for(
    config: RunnerConfig, *, wake_worker: Callable[[], None], metrics: RunnerMetrics | None = None
) -> Reconciler | None:
    """The runner's reconciler with a store connection of its own (its reads never queue behind the
    worker's writes), counting on the runner's `metrics`, or None when `reconcile.enabled` is false."""
    if not config.reconcile.enabled:
        return None
    frontend = build_frontend(config)
    counted = (metrics or RunnerMetrics()).for_reconcile(frontend.name)
    return Reconciler(config, StoreCaller(open_store(config.store)), frontend, wake_worker=wake_worker, metrics=counted)


async def finish(reconciler: Reconciler, task: asyncio.Task[None], timeout_s: float) -> None:
    """After the stop: let a running adjust end within `timeout_s`, then cancel it (its process is killed);
    close the reconciler's store connection."""
    try:
        await asyncio.wait_for(task, timeout_s)
    except TimeoutError:
        log.warning("stopping: the reconciliation adjust did not end within %.0fs; cancelled", timeout_s)
    finally:
        reconciler.frontend.cancel()
        reconciler.db.shutdown()
        reconciler.db.store.close()
