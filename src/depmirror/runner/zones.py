"""The runner's zonal shifts (docs/runner.md, "The zone alert"): the zone alert starts a shift, the shift
ends on expiry or once the alert has been resolved for the hold time, and each queues its batch.

Intake: a zone alert (label `action: zonal_shift`) whose `zone` label names a zone of the graph is stored
in the alert queue as decided (dependency "", instance `zone:<zone>`): its resends are duplicates there,
and its latest status tells any runner on the store when it resolved. A firing one starts a shift of that
zone, with the safety checks of `fleet.zonal_shift`; the store lets one shift per zone start however many
runners receive it. The shift queues one switchover per dependency whose primary runs in the zone, for the
worker, which batches what is pending at the same moment. A zone label that is missing or names no zone is
ignored with its reason, like any other label. Shadow (the runner's mode, or `policy.zonal_shift.mode`):
the shift is recorded as it would have been, and nothing changes.

The loop (`run`): every second, each open shift that expired, or that the runner started and whose zone
alert has been resolved for `policy.zonal_shift.hold`, is ended and the failback of what it moved is queued
(the worker applies the failback policy). While a shift runs, its switchovers are queued again now and then
(a runner that died between the shift and its queue items): a queued item is a duplicate, never twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import yaml

from depmirror.fleet.zonal_shift import RUNNER_PREFIX, ShiftRequest, is_runner_shift
from depmirror.fleet.zonal_shift_service import end_shift, requeue_switchovers, start_shift
from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.health.rules import ACTION_ZONAL_SHIFT
from depmirror.runner.config import RunnerConfig
from depmirror.runner.payload import Alert, Notification
from depmirror.runner.policy import ACTION_LABEL
from depmirror.runner.roster import zone_reason
from depmirror.runner.store_caller import StoreCaller
from depmirror.store import Store
from depmirror.store.model import QueuedAlert, ZonalShift, utcnow

log = logging.getLogger("depmirror.runner")
ZONE_LABEL = "zone"
TICK_S = 1.0
# How often a running shift's switchovers are queued again (each is a duplicate once queued).
REQUEUE_S = 30.0
# The instance a zone alert is stored under in the queue (it names no dependency).
ZONE_INSTANCE_PREFIX = "zone:"
_STORED_DONE = "zone alert: handled by the zonal shift service"


def is_zone_alert(labels: dict[str, str]) -> bool:
    return labels.get(ACTION_LABEL) == ACTION_ZONAL_SHIFT


def load_runner_graph(config: RunnerConfig) -> Graph | None:
    """The graph the runner's config names (`graph:`), or None when it lists its dependencies instead."""
    try:
        data = yaml.safe_load(config.path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None  # load_config read this file a moment ago and said what is wrong with it
    named = data.get("graph") if isinstance(data, dict) else None
    if not isinstance(named, str) or not named:
        return None
    return load_graph((config.path.parent / named).resolve())


@dataclass(frozen=True, slots=True)
class ZoneIntake:
    """A notification's zone alerts: `valid` name a zone of the graph; `ignored` are queued as decided,
    with the reason, like any other alert whose labels select nothing; `rest` is everything else."""

    valid: tuple[Alert, ...]
    ignored: tuple[QueuedAlert, ...]
    rest: Notification


class ZoneService:
    """One runner's side of zonal shifts: screening and acting on zone alerts (`split`, `receive`), and the
    loop that ends shifts (`run`). Every decision is `fleet.zonal_shift`'s; the store arbitrates runners."""

    def __init__(
        self,
        config: RunnerConfig,
        graph: Graph,
        db: StoreCaller,
        wake: Callable[[], None],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.graph = graph
        self.db = db
        self.wake = wake
        self.clock = clock
        self.created_by = f"{RUNNER_PREFIX}{config.runner_id}"
        self._requeued: dict[int, datetime] = {}

    @property
    def store(self) -> Store:
        return self.db.store

    @property
    def shadow(self) -> bool:
        return self.config.mode == "shadow" or self.graph.policy.zonal_shift.mode == "shadow"

    # --- intake ----------------------------------------------------------------------------------
    def split(self, notification: Notification) -> ZoneIntake:
        valid: list[Alert] = []
        ignored: list[QueuedAlert] = []
        rest: list[Alert] = []
        now = self.clock()
        for alert in notification.alerts:
            if not is_zone_alert(alert.labels):
                rest.append(alert)
                continue
            reason = zone_reason(alert.labels.get(ZONE_LABEL, ""), self.graph.zones)
            if reason is None and self.graph.policy.zonal_shift.mode == "off":
                reason = "policy.zonal_shift.mode is off: zone alerts are recorded, never acted on"
            if reason is None:
                valid.append(alert)
            else:
                ignored.append(self._row(alert, notification.group_key, now, instance="", reason=reason))
        return ZoneIntake(tuple(valid), tuple(ignored), dataclasses.replace(notification, alerts=tuple(rest)))

    def _row(self, alert: Alert, group_key: str, now: datetime, *, instance: str, reason: str) -> QueuedAlert:
        return QueuedAlert(
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            status="firing" if alert.status == "firing" else "resolved",
            dependency="",
            instance=instance,
            labels=alert.labels,
            annotations=alert.annotations,
            group_key=group_key,
            received_at=now,
            ignore_reason=reason,
        )

    async def receive(self, alerts: Sequence[Alert], group_key: str) -> int:
        """Store each valid zone alert and act on the firing ones; how many were not seen before."""
        new_count = 0
        for alert in alerts:
            zone = alert.labels[ZONE_LABEL]
            now = self.clock()
            row = self._row(alert, group_key, now, instance=ZONE_INSTANCE_PREFIX + zone, reason=_STORED_DONE)
            new = (await self.db(self.store.enqueue, [row])).queued > 0
            new_count += int(new)
            if alert.status == "firing" and await self.db(partial(self._on_firing, zone, alert, new, now)):
                self.wake()
        return new_count

    def _on_firing(self, zone: str, alert: Alert, new: bool, now: datetime) -> bool:
        """On the store thread (a few reads and writes, each its own transaction); whether it queued work."""
        store = self.store
        running = next((s for s in store.zonal_shifts(active_at=now) if s.zone == zone), None)
        if running is not None:
            return requeue_switchovers(store, self.graph, running, now) > 0
        if self.shadow and not new:
            return False  # one shadow record per zone alert, not one per resend
        policy = self.graph.policy.zonal_shift
        request = ShiftRequest(
            zone=zone,
            reason=f"the zone alert has been firing since {alert.starts_at}",
            created_by=self.created_by,
            now=now,
            expires_s=policy.expires_s,
        )
        cause = {
            "type": "zone_alert",
            "fingerprint": alert.fingerprint,
            "starts_at": alert.starts_at,
            "alertname": alert.labels.get("alertname", "")[:200],
            "runner_id": self.config.runner_id,
        }
        result = start_shift(store, self.graph, request, shadow=self.shadow, trigger=cause, record_refusal=new)
        if result.shift is None:
            return False
        log.warning("zonal shift of %s started: %d switchover(s) queued", zone, result.queued)
        return result.queued > 0

    # --- the loop: expiry, hold time, requeue ------------------------------------------------------
    async def run(self, stop: asyncio.Event, db: StoreCaller | None = None) -> None:
        """Until `stop`: `tick` every second, on `db` (the worker's store thread: the webhook's stays free)."""
        caller = db or self.db
        while not stop.is_set():
            try:
                if await caller(self.tick, caller.store):
                    self.wake()  # on the loop: the worker's wake event is not thread-safe
            except Exception:  # the store is down or a bug: log, keep the loop alive, try again
                log.exception("zonal shift loop failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=TICK_S)

    def tick(self, store: Store) -> bool:
        """On a store thread: end what is due, requeue running shifts' switchovers; whether it queued work."""
        now = self.clock()
        queued = False
        for shift in store.zonal_shifts():
            if shift.ended_ts is not None:
                continue
            why, at = self._due(store, shift, now)
            if why is None:
                queued = self._requeue(store, shift, now) or queued
                continue
            result = end_shift(
                store,
                shift.zone,
                now=now,
                end_reason=why,
                ended_by=self.created_by,
                failback=self.config.policy.failback,
                failback_hold_s=self.config.policy.failback_hold_s,
                ended_ts=at,
            )
            if result is not None:
                log.warning("zonal shift of %s ended (%s): %d failback(s) queued", shift.zone, why, result.queued)
                queued = queued or result.queued > 0
        return queued

    def _due(self, store: Store, shift: ZonalShift, now: datetime) -> tuple[str | None, datetime]:
        if shift.expires_ts <= now:
            return "expired", shift.expires_ts
        if not is_runner_shift(shift):
            return None, now  # a person's shift runs until it expires or a person ends it
        instance = ZONE_INSTANCE_PREFIX + shift.zone
        if store.firing_alerts("", instance):
            return None, now
        latest = store.latest_alert("", instance)
        hold = self.graph.policy.zonal_shift.hold_s
        if latest is None or latest.status != "resolved" or latest.received_at < shift.started_ts:
            return None, now
        if now - latest.received_at < timedelta(seconds=hold):
            return None, now
        return f"the zone alert resolved and stayed resolved for {self.graph.policy.zonal_shift.hold}", now

    def _requeue(self, store: Store, shift: ZonalShift, now: datetime) -> bool:
        if shift.id is None or not shift.active_at(now):
            return False
        last = self._requeued.get(shift.id)
        if last is not None and (now - last).total_seconds() < REQUEUE_S:
            return False
        self._requeued[shift.id] = now
        return requeue_switchovers(store, self.graph, shift, now) > 0


def zone_service(config: RunnerConfig, db: StoreCaller, wake: Callable[[], None]) -> ZoneService | None:
    """The runner's zone service, or None when its config names no graph (zone alerts are then ignored:
    'no dependency label', like any alert that names nothing the runner knows)."""
    graph = load_runner_graph(config)
    return None if graph is None else ZoneService(config, graph, db, wake)
