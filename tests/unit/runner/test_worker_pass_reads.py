"""A dispatch pass reads the store once for all its dependencies (issue 16): their leases in one transaction,
and their primaries, cooldowns and flap counts in one read, on both backends. Before, each dependency made
its own round trips (lease, primaries, primary, cooldown, flapping), one after another on the runner's one
store thread: a zone of 40 dependencies waited for some 200 of them before its batch could start."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.fakes.webhook import RecordingAction, StaticHealth, alert, notification

from depmirror.runner.store_caller import StoreCaller
from depmirror.store import ActionRecord, Event, EventFilter, QueuedAlert

T = TypeVar("T")
DEPENDENCIES = 12
# Reads a decision used to make for itself, one round trip per dependency each.
PER_DEPENDENCY_READS = ("acquire_lease", "primaries", "primary", "events", "alert_transitions", "zonal_shifts")


class CountingCaller:
    """The worker's store caller, counting each store method it runs (the round trips on the store thread)."""

    def __init__(self, inner: StoreCaller) -> None:
        self.inner = inner
        self.store = inner.store
        self.calls: Counter[str] = Counter()

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        named = fn.func if isinstance(fn, partial) else fn
        self.calls[getattr(named, "__name__", "?")] += 1
        return await self.inner(fn, *args)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runner.db'}"
    return str(request.getfixturevalue("postgres_database"))


def _names() -> list[str]:
    return [f"dep-{n:02d}" for n in range(DEPENDENCIES)]


def _runner(harness: Any, store_url: str, **policy: Any) -> Any:
    return harness(
        RecordingAction(target="b"),
        StaticHealth(candidates={"b": "healthy"}),
        mode="act",
        store=store_url,
        dependencies={name: ["a", "b"] for name in [*_names(), "payments"]},
        policy={"cooldown_seconds": 300, "flap_max_transitions": 6, **policy},
    )


def _one_pass(h: Any, alerts: list[dict[str, Any]]) -> CountingCaller:
    """Deliver `alerts` in one webhook, then one dispatch pass to its end; the store calls it made."""

    async def scenario() -> CountingCaller:
        client = await h.client()
        try:
            assert (await h.post(client, notification(*alerts))).status == 202
        finally:
            await client.close()
        counting = CountingCaller(h.db)
        h.worker.db = counting
        await h.worker.dispatch()
        await h.worker.drain(20.0)
        h.worker.db = counting.inner
        return counting

    return asyncio.run(scenario())


def test_a_pass_reads_leases_primaries_cooldowns_and_flapping_once_for_all_its_dependencies(
    harness: Any, store_url: str
) -> None:
    h = _runner(harness, store_url)
    alerts = [alert(dependency=name, instance=f"{name}@a", fingerprint=f"f-{name}") for name in _names()]

    counting = _one_pass(h, alerts)

    events = h.store.events(EventFilter(kinds=("rollback",), limit=None))
    assert sorted(e.dependency for e in events) == _names()  # every one decided and acted, as before
    assert counting.calls["acquire_leases"] == 1
    assert counting.calls["pass_state"] == 1
    # None of the old per-dependency round trips is left (12 of each before).
    assert {name: counting.calls[name] for name in PER_DEPENDENCY_READS} == dict.fromkeys(PER_DEPENDENCY_READS, 0)


def test_cooldown_and_flapping_still_hold_back_with_the_pass_s_read(harness: Any, store_url: str) -> None:
    h = _runner(harness, store_url)
    now = datetime.now(UTC)
    # dep-00 switched over 10 s ago (cooldown 300 s); dep-01's alert changed state 6 times in the window.
    h.store.append_event(
        Event(kind="rollback", dependency="dep-00", outcome="succeeded", time=now - timedelta(seconds=10))
    )
    # A rollback that could not start (outcome error) starts no cooldown: dep-02 acts.
    h.store.append_event(Event(kind="rollback", dependency="dep-02", outcome="error", time=now))
    h.store.enqueue(
        [
            QueuedAlert(
                fingerprint="f-dep-01",
                starts_at=f"2026-01-01T00:00:0{n}Z",
                status="firing" if n % 2 else "resolved",
                dependency="dep-01",
                instance="dep-01@a",
                received_at=now - timedelta(seconds=30),
                ignore_reason="earlier",
            )
            for n in range(6)
        ]
    )
    alerts = [alert(dependency=name, instance=f"{name}@a", fingerprint=f"f-{name}") for name in _names()[:3]]

    _one_pass(h, alerts)

    suppressed = {e.dependency: e.reason for e in h.store.events(EventFilter(kinds=("alert_suppressed",)))}
    assert sorted(suppressed) == ["dep-00", "dep-01"]
    assert suppressed["dep-00"].startswith("cooldown: rollback")
    assert suppressed["dep-01"].startswith("flapping: 7 alert state changes")
    acted = [e.dependency for e in h.store.events(EventFilter(kinds=("rollback",))) if e.decision == "act"]
    assert acted == ["dep-02"]


def test_a_second_instance_of_one_dependency_in_the_same_pass_sees_the_first_one_s_switchover(
    harness: Any, store_url: str
) -> None:
    # The pass's read stands for the store only until the task acts: payments@a is switched to payments-b
    # first; the alert of payments@b (now the primary) must see that switchover's cooldown, not the read
    # made before it (no primary recorded: it would have switched again).
    h = _runner(harness, store_url)
    alerts = [
        alert(dependency="payments", instance="payments@a", fingerprint="fa"),
        alert(dependency="payments", instance="payments@b", fingerprint="fb"),
    ]

    _one_pass(h, alerts)

    rollbacks = h.store.events(EventFilter(kinds=("rollback",)))
    assert [(e.instance, e.outcome) for e in rollbacks] == [("payments@a", "succeeded")]
    (held,) = h.store.events(EventFilter(kinds=("alert_suppressed",)))
    assert held.instance == "payments@b" and held.reason.startswith("cooldown: rollback")


def test_a_store_failure_mid_pass_lets_go_of_the_pass_s_dependencies(
    harness: Any, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pass takes all its leases first: if the store fails while it closes a dead runner's action, none
    # of them may stay busy (or leased) for ever; the next pass decides them.
    h = _runner(harness, store_url)
    now = datetime.now(UTC)
    h.store.enqueue([QueuedAlert("old", "2026-01-01T00:00:00Z", "firing", "dep-00", "dep-00@a", received_at=now)])
    (queued,) = h.store.pending(now)
    assert h.store.acquire_lease("dep-00", "dead-runner", 0.01) is not None
    h.store.begin_action(ActionRecord("a0", "rollback", "dep-00", "dep-00@a", "dead-runner", now, queued.queue_ids))
    time.sleep(0.05)  # the dead runner's lease runs out: its action is abandoned
    real = h.store.recover_interrupted
    monkeypatch.setattr(h.store, "recover_interrupted", _fails_once(real))
    alerts = [alert(dependency=name, instance=f"{name}@a", fingerprint=f"f-{name}") for name in _names()[:3]]

    async def scenario() -> None:
        client = await h.client()
        try:
            assert (await h.post(client, notification(*alerts))).status == 202
        finally:
            await client.close()
        with pytest.raises(RuntimeError, match="store hiccup"):
            await h.worker.dispatch()
        assert h.worker._busy == set()
        await h.worker.dispatch()  # the next pass takes them again
        await h.worker.drain(20.0)

    asyncio.run(scenario())
    acted = sorted(e.dependency for e in h.store.events(EventFilter(kinds=("rollback",))) if e.decision == "act")
    assert acted == _names()[:3]


def _fails_once(real: Callable[..., T]) -> Callable[..., T]:
    calls = 0

    def call(*args: Any, **kwargs: Any) -> T:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("store hiccup")
        return real(*args, **kwargs)

    return call
