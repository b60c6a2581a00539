"""The worker: takes decided-nothing-yet alerts from the durable queue, decides, and acts (one at a time
per dependency), recording every decision in the rollback history. The rollbacks of one dispatch pass go to
an action that can batch them (the fast path) as one batch (docs/rollback.md, "Batches")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from depmirror.fleet.zonal_shift import SHIFT_ALERTNAME, shift_behind
from depmirror.health.checker import UNHEALTHY_BELOW
from depmirror.rollback.flow import host_of
from depmirror.runner import orphans, policy
from depmirror.runner.actions import (
    Action,
    ActionKind,
    ActionRequest,
    ActionResult,
    BatchAction,
    BatchGate,
    BatchItems,
    Started,
)
from depmirror.runner.config import RunnerConfig
from depmirror.runner.events import decision_event, health_inputs, trigger
from depmirror.runner.health import BatchHealthChecker, HealthBatch, HealthChecker, HealthRequest, HealthView
from depmirror.runner.leases import DependencyLease
from depmirror.runner.metrics import RunnerMetrics
from depmirror.runner.store_caller import StoreCaller
from depmirror.store.model import ActionRecord, Event, EventFilter, PassState, QueuedAlert, utcnow

log = logging.getLogger("depmirror.runner")
T = TypeVar("T")
HEALTH_TIMEOUT_S = 5.0
# How many recent rollback/failback events the cooldown looks through for one that ran.
COOLDOWN_LOOKBACK = 50
# A pass at least this often with no webhook: holds that ended, leases to renew, abandoned actions.
IDLE_PASS_S = 1.0
# Alerts of this many dependencies waiting after the dispatch window make a burst the worker keeps gathering.
BURST_DEPENDENCIES = 2


class FailbackBatchAction(Action, Protocol):
    """An action that can carry several failbacks in one run (the playbook: one nginx pass per LB)."""

    async def run_failback_batch(self, items: BatchItems) -> list[ActionResult]:
        """One result per item, in the items' order."""
        ...


class Worker:
    def __init__(
        self,
        config: RunnerConfig,
        db: StoreCaller,
        action: Action | None,
        health: HealthChecker,
        metrics: RunnerMetrics,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.db = db
        self.store = db.store
        self.action = action
        self.health = health
        self.metrics = metrics
        self.clock = clock
        self.wake = asyncio.Event()
        self._busy: set[str] = set()
        self._leases: dict[str, DependencyLease] = {}
        self._gates: dict[str, BatchGate] = {}
        self._failback_gates: dict[str, BatchGate] = {}
        self._rechecks: dict[str, HealthBatch] = {}
        # Each dependency's last re-check and when it was asked (time.monotonic()), for an action that can
        # decide on it (the fast path's batch), when the checker reads the graph that action decides with.
        self._checked: dict[str, tuple[HealthView, float]] = {}
        self._reuse_health = _reads_graph_of(health, action)
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(config.policy.max_concurrent_actions)
        # Called with the dependency after each recorded switchover or failback (runner/reconcile.py pokes).
        self.after_action: Callable[[str], None] = lambda dependency: None

    # --- lifecycle -----------------------------------------------------------------------------------
    async def recover(self) -> list[Event]:
        """Close the actions a previous process of this runner left open, ending their orphaned playbooks
        first: a retry must never run next to the run it replaces."""
        notes: dict[str, dict[str, Any]] = {}
        if self.config.action.kind == "ansible-runner":
            for record in await self.db(self.store.unfinished_actions, self.config.runner_id):
                data_dir = self.config.action.work_dir / record.action_id
                notes[record.action_id] = {
                    "orphan": await asyncio.to_thread(orphans.end_orphan, data_dir, record.external_id)
                }
            strays = await asyncio.to_thread(orphans.end_strays, self.config.action.work_dir, set(notes))
            for action_id, note in strays.items():
                log.warning("ended playbook %s of an action another runner took over: %s", action_id, note)
        recovered = await self.db(self.store.recover_interrupted, self.config.runner_id, self.clock(), notes)
        for record, event in recovered:
            log.warning(
                "action %s (%s of %s) was interrupted; re-evaluating",
                record.action_id,
                record.kind,
                record.dependency,
            )
            self._count(event)
        await self.db(self.store.prune_queue, self.clock() - timedelta(seconds=self.config.queue_retention_s))
        return [event for _, event in recovered]

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Cleared before the pass, not after it: a webhook whose alert was committed after the pass read
            # the queue must start the next pass, not wait for the idle tick (issue 22: two hang faults of
            # 210 started 0.33 s late, woken only by the next webhook).
            self.wake.clear()
            try:
                await self.take_over_abandoned()
                await self.dispatch()
            except Exception:  # a store hiccup must not kill the worker; the queue keeps the alerts
                log.exception("dispatch failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=IDLE_PASS_S)
                await self.gather()

    async def gather(self) -> None:
        """Batch a burst: one pass per burst instead of one per webhook. Wait `dispatch_window_s` (a lone
        alert waits only that, however many webhooks its failure brings); when by then alerts of several
        dependencies are waiting (a zone failing: its alerts reach the runner spread over the probes' and
        rule groups' slots), keep gathering until no NEW dependency's alert has arrived for the window, or
        until `dispatch_window_max_s` after the first wake, so that the zone is one or two batches.

        Only a new dependency restarts the window: a webhook that brings nothing to act on (a `notify` alert
        of a dependency already waiting, Alertmanager's resend of the same group `group_interval` later, a
        zonal shift's item for a dependency whose own alert is in) wakes the worker all the same, and on the
        lab each dependency's second webhook came 0.25 s after its first: the zone's last batch waited for
        it (issue 16, docs/performance.md)."""
        loop = asyncio.get_running_loop()
        window, most = self.config.policy.dispatch_window_s, self.config.policy.dispatch_window_max_s
        deadline = loop.time() + most
        await asyncio.sleep(window)
        if most <= window:
            return
        seen = await self._waiting_dependencies()
        if len(seen) < BURST_DEPENDENCIES:
            return
        quiet_from = loop.time()
        self.wake.clear()
        while (left := min(deadline, quiet_from + window) - loop.time()) > 0:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=left)
            except TimeoutError:
                return  # no new dependency for the window (or the max reached): the burst is over
            # Cleared before the read: a webhook landing during it wakes the loop again.
            self.wake.clear()
            now_waiting = await self._waiting_dependencies()
            if now_waiting - seen:
                seen |= now_waiting
                quiet_from = loop.time()

    async def _waiting_dependencies(self) -> set[str]:
        """The dependencies with alerts waiting that no running action holds (one failure, however many
        alerts, is one)."""
        pending = await self.db(partial(self.store.pending, per_dependency=1), self.clock())
        return {alert.dependency for alert in pending if alert.dependency not in self._busy}

    async def drain(self, timeout_s: float) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)

    def idle(self) -> bool:
        return not self._tasks

    # --- dispatch ----------------------------------------------------------------------------------
    async def dispatch(self) -> None:
        pending = await self.db(self.store.pending, self.clock())
        self.metrics.queue_depth.set(await self.db(self.store.queue_depth))
        by_dependency: dict[str, list[QueuedAlert]] = {}
        for alert in pending:
            by_dependency.setdefault(alert.dependency, []).append(alert)
        # Read once: a lease this pass takes was free when it began, so its old holder's actions are here.
        abandoned: dict[str, list[ActionRecord]] = {}
        if by_dependency:
            for record in await self.db(self.store.abandoned_actions, self.config.runner_id):
                abandoned.setdefault(record.dependency, []).append(record)
        gate = self._new_gate()
        failbacks = self._new_failback_gate()
        rechecks = self._new_rechecks()
        # One action at a time per dependency: what a running action holds waits in the queue. The leases of
        # the rest in one store transaction; those another runner holds now are left to it.
        leases = await DependencyLease.acquire_many(
            self.db,
            [dependency for dependency in by_dependency if dependency not in self._busy],
            self.config.runner_id,
            self.config.policy.lease_s,
        )
        for dependency, lease in leases.items():
            self._busy.add(dependency)
            self._leases[dependency] = lease
            lease.keep()
        try:
            for dependency, lease in leases.items():
                # An action a dead runner journaled for this dependency is closed before anything new starts:
                # its alerts go back to the queue, and no two actions of one dependency are ever open at once.
                await self._take_over(lease, abandoned.get(dependency, []))
        except Exception:
            # The store failed mid-pass: let go of the pass's dependencies, so the next pass takes them again.
            for dependency, lease in leases.items():
                self._busy.discard(dependency)
                self._leases.pop(dependency, None)
                await lease.release()
            raise
        state = await self._pass_state({dependency: by_dependency[dependency] for dependency in leases})
        for dependency in leases:
            alerts = by_dependency[dependency]
            if gate is not None:
                gate.expect(dependency)
                self._gates[dependency] = gate
            if failbacks is not None:
                failbacks.expect(dependency)
                self._failback_gates[dependency] = failbacks
            if rechecks is not None:
                rechecks.expect(dependency)
                self._rechecks[dependency] = rechecks
            task = asyncio.create_task(self._handle(dependency, alerts, state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if gate is not None:
            gate.seal()
        if failbacks is not None:
            failbacks.seal()
        if rechecks is not None:
            rechecks.seal()

    async def _pass_state(self, handled: dict[str, list[QueuedAlert]]) -> PassState | None:
        """What the pass's decisions read from the store, in one read for all its dependencies, once their
        leases are taken: the primaries, each one's last action (cooldown), its alerts' state changes
        (flapping), the active zonal shifts when a shift's item waits. Read before, a lease taken in this pass
        could let a cooldown in: an action of another runner that ended just before. None: each decision
        reads for itself (the store hiccupped; the pass still runs)."""
        if not handled:
            return None
        alerts = [alert for group in handled.values() for alert in group]
        now = self.clock()
        shifts_at = now if any(a.labels.get("alertname") == SHIFT_ALERTNAME for a in alerts) else None
        try:
            return await self.db(
                partial(self.store.pass_state, shifts_at=shifts_at),
                list(handled),
                sorted({alert.fingerprint for alert in alerts}),
                policy.flap_since(now, self.config.policy),
                COOLDOWN_LOOKBACK,
            )
        except Exception:  # the decisions read for themselves, and say so if the store is really down
            log.exception("the pass's store read failed; each dependency reads its own")
            return None

    def _new_rechecks(self) -> HealthBatch | None:
        """The health re-checks of this dispatch pass as one checker call, when the checker can batch."""
        if not hasattr(self.health, "check_many"):
            return None
        return HealthBatch(cast(BatchHealthChecker, self.health))  # it has check_many: checked just above

    def _new_gate(self) -> BatchGate | None:
        """The batch of this dispatch pass, when the action can carry several rollbacks at once."""
        action = self.action
        if self.config.mode != "act" or action is None or not hasattr(action, "run_batch"):
            return None
        batching = cast(BatchAction, action)  # it has run_batch: checked just above

        async def run(items: BatchItems) -> list[ActionResult]:
            async with self._slots:  # a batch is one action: it takes one slot, whatever its size
                return await batching.run_batch(items)

        return BatchGate(run)

    def _new_failback_gate(self) -> BatchGate | None:
        """The failbacks of this dispatch pass as one batch (a zonal shift's end, resolved alerts that arrive
        together), when the action can run several at once: one playbook run, one nginx pass per LB."""
        action = self.action
        if self.config.mode != "act" or action is None or not hasattr(action, "run_failback_batch"):
            return None
        batching = cast(FailbackBatchAction, action)  # it has run_failback_batch: checked just above

        async def run(items: BatchItems) -> list[ActionResult]:
            async with self._slots:  # one run, one slot, whatever its size
                return await batching.run_failback_batch(items)

        return BatchGate(run)

    async def _handle(self, dependency: str, alerts: list[QueuedAlert], state: PassState | None = None) -> None:
        try:
            await self._handle_dependency(alerts, state)
        except Exception:
            log.exception("handling alerts for %r failed; they stay queued", dependency)
            await asyncio.sleep(1.0)
        finally:
            for gates in (self._gates, self._failback_gates):
                gate = gates.pop(dependency, None)
                if gate is not None:
                    gate.leave(dependency)
            rechecks = self._rechecks.pop(dependency, None)
            if rechecks is not None:
                rechecks.leave(dependency)
            self._checked.pop(dependency, None)
            lease = self._leases.pop(dependency, None)
            if lease is not None:
                await lease.release()
            self._busy.discard(dependency)
            self.wake.set()

    async def take_over_abandoned(self) -> list[Event]:
        """Actions another runner journaled and whose lease ran out (that runner died or was cut off): close
        each as interrupted and put its alerts back, under this runner's lease, to be decided again."""
        taken: list[Event] = []
        runner_id = self.config.runner_id
        for dependency in sorted(
            {record.dependency for record in await self.db(self.store.abandoned_actions, runner_id)}
        ):
            if dependency in self._busy:
                continue  # dispatch took its lease and closes them itself
            lease = await DependencyLease.acquire(self.db, dependency, runner_id, self.config.policy.lease_s)
            if lease is None:
                continue
            try:
                records = await self.db(self.store.abandoned_actions, runner_id)
                taken.extend(await self._take_over(lease, [r for r in records if r.dependency == dependency]))
            finally:
                await lease.release()
        if taken:
            self.wake.set()
        return taken

    async def _take_over(self, lease: DependencyLease, records: list[ActionRecord]) -> list[Event]:
        """Close, under `lease`, actions other runners journaled for its dependency and no longer hold."""
        taken: list[Event] = []
        for record in records:
            note = {record.action_id: {"taken_over_by": self.config.runner_id, "lease_token": lease.token}}
            recovered = await self.db(
                partial(self.store.recover_interrupted, only=[record.action_id]), record.runner_id, self.clock(), note
            )
            for _, event in recovered:
                log.warning(
                    "took over %s of %s from runner %s (it no longer holds the lease); deciding again",
                    record.kind,
                    record.dependency,
                    record.runner_id,
                )
                self._count(event)
                taken.append(event)
        return taken

    async def _handle_dependency(self, alerts: list[QueuedAlert], state: PassState | None = None) -> None:
        """`state`: the pass's read of the store (None: read here). It stands for the store until this task
        changes it, so only the first instance's decision uses it; the dependency's lease keeps every other
        runner's actions out meanwhile."""
        ignored: dict[str, list[QueuedAlert]] = {}
        ours: list[QueuedAlert] = []
        primaries = state.primaries if state is not None else await self.db(self.store.primaries)
        for alert in alerts:
            primary = primaries.get(alert.dependency)
            is_primary = bool(primary and alert.instance and _same(alert.dependency, primary, alert.instance))
            reason = policy.ignore_reason(alert, self.config, is_primary)
            if reason is None:
                ours.append(alert)
            else:
                ignored.setdefault(reason, []).append(alert)
        if any(a.labels.get("alertname") == SHIFT_ALERTNAME for a in ours):
            # A zonal shift moves primaries that may look healthy (a drill, an operator's shift): only one
            # the store holds active counts, never an alert that merely carries the name.
            shifts = list(state.shifts) if state is not None else await self.db(self.store.zonal_shifts, self.clock())
            if any(shift_behind(a, shifts, self.clock()) for a in ours):
                policy.mark_deliberate(alerts[0].dependency)
        for reason, group in ignored.items():
            await self._settle(group, self._event("alert_ignored", group, decision="ignore", reason=reason))
        for instance_alerts in policy.by_instance(ours).values():
            snapshot, state = state, None  # the first decision only: it may act, and change the store
            # Each alert is its own identity (fingerprint): a resolved one never cancels another that fires.
            firing = [a for a in instance_alerts if a.status == "firing"]
            if firing:
                # Firing last: the decision and its trigger are the newest firing alert's; all settle.
                await self._on_firing([a for a in instance_alerts if a.status != "firing"] + firing, snapshot)
            else:
                await self._on_resolved(instance_alerts, snapshot)

    # --- firing: rollback --------------------------------------------------------------------------
    async def _on_firing(self, alerts: list[QueuedAlert], state: PassState | None = None) -> None:
        newest = alerts[-1]
        dependency, instance = newest.dependency, newest.instance
        retry_of = next((a.retry_of for a in alerts if a.retry_of), None)
        primary = (
            state.primaries.get(dependency) if state is not None else await self.db(self.store.primary, dependency)
        )
        if primary is not None and not _same(dependency, primary, instance):
            kind, reason = "alert_ignored", f"{instance} is not the primary ({primary} is)"
            if retry_of:
                kind, reason = "alert_suppressed", f"superseded: the primary is already {primary}"
            await self._settle(alerts, self._event(kind, alerts, decision="ignore", reason=reason))
            return
        if retry_of:
            if await self._resume(alerts, retry_of):
                return
        else:
            held = await self._held_back(alerts, ("rollback",), state)
            if held:
                return
        view = await self._check_health(dependency, instance)
        verdict = policy.judge_rollback_health(view, self.config.policy)
        if not verdict.act:
            await self._settle(
                alerts,
                self._event("refused", alerts, action="rollback", decision="refuse", reason=verdict.reason, view=view),
            )
            return
        await self._act("rollback", alerts, view, candidates=verdict.candidates, why=verdict.reason, retry_of=retry_of)

    async def _resume(self, alerts: list[QueuedAlert], retry_of: str) -> bool:
        """An interrupted action: follow it if it can be followed, hold it if policy says so."""
        previous = await self.db(
            self.store.events, EventFilter(dependency=alerts[-1].dependency, kinds=("interrupted",), limit=20)
        )
        interrupted = next((e for e in previous if e.details.get("action_id") == retry_of), None)
        external_id = interrupted.details.get("external_id") if interrupted else None
        # A local playbook's handle (pid:...) names a process recovery ended; only remote jobs are followed.
        followable = bool(external_id) and not str(external_id).startswith("pid:")
        if followable and self.action is not None and self.config.mode == "act":
            await self._follow(alerts, str(external_id), retry_of, interrupted)
            return True
        attempts = max(a.attempts for a in alerts)
        if self.config.policy.on_interrupted == "hold" or attempts > 1:
            why = "policy.on_interrupted is hold" if attempts <= 1 else f"interrupted {attempts} times"
            await self._settle(
                alerts,
                self._event(
                    "refused",
                    alerts,
                    action="rollback",
                    decision="hold",
                    reason=f"action {retry_of} was interrupted, may have run in part; {why}; operator needed",
                ),
            )
            return True
        return False

    async def _held_back(
        self, alerts: list[QueuedAlert], kinds: tuple[str, ...], state: PassState | None = None
    ) -> bool:
        newest = alerts[-1]
        now = self.clock()
        fingerprints = sorted({a.fingerprint for a in alerts})
        if state is not None:
            last = state.last_actions.get(newest.dependency)
            transitions = state.most_transitions(fingerprints)
        else:
            recent = await self.db(
                self.store.events,
                EventFilter(dependency=newest.dependency, kinds=("rollback", "failback"), limit=COOLDOWN_LOOKBACK),
            )
            # An action that could not start changed nothing: it starts no cooldown.
            last = next((event for event in recent if event.outcome != "error"), None)
            transitions = None
        reason = policy.in_cooldown(last, now, self.config.policy)
        if reason is None:
            if transitions is None:
                transitions = await self.db(
                    self.store.alert_transitions, fingerprints, policy.flap_since(now, self.config.policy)
                )
            reason = policy.flapping(transitions, self.config.policy)
        if reason is None:
            return False
        await self._settle(
            alerts,
            self._event("alert_suppressed", alerts, action=kinds[0], decision="suppress", reason=reason),
        )
        return True

    # --- resolved: failback ------------------------------------------------------------------------
    async def _on_resolved(self, alerts: list[QueuedAlert], state: PassState | None = None) -> None:
        newest = alerts[-1]
        if not self.config.policy.failback:
            await self._settle(alerts, None)
            return
        still_firing = await self.db(self.store.firing_alerts, newest.dependency, newest.instance)
        if still_firing:
            await self._settle(
                alerts,
                self._event(
                    "alert_suppressed",
                    alerts,
                    action="failback",
                    decision="suppress",
                    reason=f"fired again during the hold ({', '.join(still_firing[:5])} firing)",
                ),
            )
            return
        rollbacks = await self.db(
            self.store.events,
            EventFilter(dependency=newest.dependency, kinds=("rollback",), instance=newest.instance, limit=1),
        )
        primary = (
            state.primaries.get(newest.dependency)
            if state is not None
            else await self.db(self.store.primary, newest.dependency)
        )
        if (
            not rollbacks
            or rollbacks[0].outcome not in ("succeeded", "shadow")
            or (primary is not None and _same(newest.dependency, primary, newest.instance))
        ):
            await self._settle(alerts, None)  # nothing was rolled back away from this instance
            return
        if await self._held_back(alerts, ("failback",), state):
            return
        view = await self._check_health(newest.dependency, newest.instance)
        verdict = policy.judge_failback_health(view)
        if not verdict.act:
            await self._settle(
                alerts,
                self._event("refused", alerts, action="failback", decision="refuse", reason=verdict.reason, view=view),
            )
            return
        await self._act("failback", alerts, view, why="the instance recovered and the hold time passed")

    # --- acting ------------------------------------------------------------------------------------
    async def _act(
        self,
        kind: ActionKind,
        alerts: list[QueuedAlert],
        view: HealthView,
        *,
        why: str,
        candidates: tuple[str, ...] = (),
        retry_of: str | None = None,
    ) -> None:
        newest = alerts[-1]
        request = ActionRequest(
            action_id=uuid.uuid4().hex,
            kind=kind,
            dependency=newest.dependency,
            instance=newest.instance,
            trigger=self._trigger(alerts),
            store_url=self.store.url,
            candidates=candidates,
            retry_of=retry_of,
        )
        if self.config.mode == "shadow" or self.action is None:
            event = self._event(
                kind,
                alerts,
                decision="shadow",
                reason=f"shadow mode: would run; {why}",
                view=view,
                outcome="shadow",
                details={"action_id": request.action_id, "extra_vars": request.extra_vars()},
            )
            await self._settle(alerts, event)
            self.metrics.actions.labels(kind, "shadow").inc()
            return
        record = ActionRecord(
            action_id=request.action_id,
            kind=kind,
            dependency=request.dependency,
            instance=request.instance,
            runner_id=self.config.runner_id,
            started_at=self.clock(),
            queue_ids=_queue_ids(alerts),
            trigger=request.trigger,
            inputs=health_inputs(view),
        )
        lease = self._leases.get(request.dependency)
        if lease is not None:
            request = replace(request, fence=lease.held)
        checked = self._checked.pop(request.dependency, None)
        if checked is not None and checked[0] is view and kind == "rollback":
            # The batch decides on the verdicts this decision was made on (fast_action.reusable_health).
            request = replace(request, checked=checked)
        # A rollback joins the pass's rollback batch, a failback its failback batch; each leaves the other.
        gate, other = self._gates.get(request.dependency), self._failback_gates.get(request.dependency)
        if kind != "rollback":
            gate, other = other, gate
        if other is not None:
            other.leave(request.dependency)
        began = time.monotonic()
        if gate is not None:
            if lease is not None and not await lease.still_held():
                gate.leave(request.dependency)
                log.warning("not starting the %s of %s: the lease passed to another runner", kind, request.dependency)
                return
            await self.db(self.store.begin_action, record)
            began = time.monotonic()
            result = await self._run(request, partial(gate.submit, request))
        else:
            async with self._slots:
                if lease is not None and not await lease.still_held():
                    log.warning(
                        "not starting the %s of %s: the lease passed to another runner", kind, request.dependency
                    )
                    return  # the alerts stay queued for the runner that holds the lease
                await self.db(self.store.begin_action, record)
                began = time.monotonic()
                result = await self._run(request, partial(self.action.run, request))
        duration = time.monotonic() - began
        await self._finish(
            alerts,
            record,
            result,
            duration=duration,
            view=view,
            details={
                "action_id": request.action_id,
                "executor": self.action.name,
                "external_id": result.external_id,
                "retry_of": retry_of,
            },
            why=why,
        )

    async def _run(self, request: ActionRequest, run: Callable[[Started], Awaitable[ActionResult]]) -> ActionResult:
        """Run the action (alone, or as part of the pass's batch) and turn a crash into a failed result."""

        async def started(external_id: str) -> None:
            await self.db(self.store.set_action_external_id, request.action_id, external_id)

        try:
            return await run(started)
        except Exception as error:  # a bug in an action must close its journal entry, not wedge it
            log.exception("action %s raised", request.action_id)
            return ActionResult(outcome="failed", detail=f"action raised {type(error).__name__}: {error}")

    async def _follow(
        self, alerts: list[QueuedAlert], external_id: str, retry_of: str, interrupted: Event | None
    ) -> None:
        assert self.action is not None
        for gates in (self._gates, self._failback_gates):
            gate = gates.get(alerts[-1].dependency)
            if gate is not None:
                gate.leave(alerts[-1].dependency)  # following a job started before a restart is no batch member
        kind: ActionKind = "failback" if interrupted is not None and interrupted.action == "failback" else "rollback"
        record = ActionRecord(
            action_id=uuid.uuid4().hex,
            kind=kind,
            dependency=alerts[-1].dependency,
            instance=alerts[-1].instance,
            runner_id=self.config.runner_id,
            started_at=self.clock(),
            queue_ids=_queue_ids(alerts),
            external_id=external_id,
            trigger=self._trigger(alerts),
        )
        await self.db(self.store.begin_action, record)
        began = time.monotonic()
        result = await self.action.follow(external_id)
        if result is None:
            await self._finish(
                alerts,
                record,
                ActionResult(outcome="failed", detail=f"cannot follow {external_id}"),
                details={"action_id": record.action_id, "retry_of": retry_of},
                why="resume",
            )
            return
        await self._finish(
            alerts,
            record,
            result,
            duration=time.monotonic() - began,
            details={"action_id": record.action_id, "followed": external_id, "retry_of": retry_of},
            why=f"followed {external_id} started before the restart; not launched again",
        )

    async def _finish(
        self,
        alerts: list[QueuedAlert],
        record: ActionRecord,
        result: ActionResult,
        *,
        details: dict[str, Any],
        why: str,
        duration: float = 0.0,
        view: HealthView | None = None,
    ) -> None:
        kind = record.kind
        lease = self._leases.get(record.dependency)
        if lease is not None and not await lease.still_held():
            # The runner that took the lease over closes this action from the journal and decides again;
            # recording here too would give the dependency two events for one switchover.
            log.warning(
                "%s of %s ended (%s) after the lease passed to another runner; it records nothing",
                kind,
                record.dependency,
                result.outcome,
            )
            return
        event = self._event(
            kind,
            alerts,
            decision="act",
            reason="; ".join(part for part in (why, result.detail) if part),
            view=view,
            outcome=result.outcome,
            details={**details, **result.details},
        )
        event = replace(event, target=result.target, duration_s=round(duration, 3))
        stored = await self.db(self.store.finish_action, record.action_id, event)
        if result.outcome == "succeeded" and result.target:
            # The playbook publishes the primary after the action (a failback may leave it where it is);
            # the store keeps hosts, as the playbooks and the planner do, while alerts say `dependency@host`.
            await self.db(self.store.set_primary, record.dependency, host_of(record.dependency, result.target))
        if result.outcome == "error":
            log.error("%s of %s could not start: %s", kind, record.dependency, result.detail)
        self._count(stored)
        self.metrics.actions.labels(kind, result.outcome).inc()
        self.metrics.action_duration.labels(kind).observe(duration)
        self.after_action(record.dependency)

    # --- helpers -----------------------------------------------------------------------------------
    async def _check_health(self, dependency: str, instance: str) -> HealthView:
        rechecks = self._rechecks.pop(dependency, None)
        override = UNHEALTHY_BELOW.get()
        threshold = override[1] if override is not None and override[0] == dependency else None
        asked = time.monotonic()
        try:
            if rechecks is not None:
                # The pass's re-checks go to the checker as one call; a second one of this task runs alone.
                request = HealthRequest(dependency, instance, threshold)
                view = await asyncio.wait_for(rechecks.check(request), HEALTH_TIMEOUT_S)
            else:
                view = await asyncio.wait_for(self.health.check(dependency, instance), HEALTH_TIMEOUT_S)
            if self._reuse_health and threshold is None:
                # An override's threshold made these verdicts differ from the graph's the batch decides with.
                self._checked[dependency] = (view, asked)
            return view
        except Exception as error:  # a broken checker means "unknown", never "healthy"
            return HealthView(
                failed_instance="unknown",
                source="error",
                inputs={"error": f"{type(error).__name__}: {error}"},
            )

    async def _settle(self, alerts: Sequence[QueuedAlert], event: Event | None) -> None:
        stored = await self.db(self.store.settle, list(_queue_ids(alerts)), event)
        if stored is not None:
            self._count(stored)

    def _count(self, event: Event) -> None:
        self.metrics.decisions.labels(event.kind, event.outcome).inc()

    def _trigger(self, alerts: Sequence[QueuedAlert]) -> dict[str, Any]:
        return trigger(alerts, self.config.runner_id)

    def _event(
        self,
        kind: str,
        alerts: Sequence[QueuedAlert],
        *,
        decision: str,
        reason: str,
        action: str | None = None,
        view: HealthView | None = None,
        outcome: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Event:
        return decision_event(
            kind,
            alerts,
            runner_id=self.config.runner_id,
            now=self.clock(),
            decision=decision,
            reason=reason,
            action=action,
            view=view,
            outcome=outcome,
            details=details,
        )


def _reads_graph_of(health: object, action: object) -> bool:
    """Whether the health checker reads the graph file the action decides with (the Prometheus checker's
    `graph`, the fast path's `graph_source`): then the action may decide on the checker's verdicts."""
    checker = getattr(getattr(health, "graph", None), "source", None)
    acting = getattr(action, "graph_source", None)
    if not isinstance(checker, str) or not isinstance(acting, str):
        return False
    return Path(checker).resolve() == Path(acting).resolve()


def _queue_ids(alerts: Sequence[QueuedAlert]) -> tuple[int, ...]:
    return tuple(queue_id for alert in alerts for queue_id in alert.queue_ids)


def _same(dependency: str, primary: str, instance: str) -> bool:
    """The store names the primary by host; an alert names the instance `dependency@host` (or a host)."""
    return host_of(dependency, primary) == host_of(dependency, instance)
