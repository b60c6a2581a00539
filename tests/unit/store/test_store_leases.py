"""Leases on both backends: one runner acts on a dependency at a time, a fencing token that grows with every
new holder, and the actions of a runner whose lease ran out, for another to take over."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from depmirror.store import ActionRecord, QueuedAlert, Store

OpenStore = Callable[..., Store]


def test_one_holder_at_a_time_and_the_token_fences_a_holder_that_lost_its_lease(open_test_store: OpenStore) -> None:
    one, two = open_test_store(), open_test_store()  # two runners, two connections
    token = one.acquire_lease("payments", "runner-1", 0.5)
    assert token is not None
    assert two.acquire_lease("payments", "runner-2", 5) is None  # held
    assert one.acquire_lease("payments", "runner-1", 0.5) == token  # a renewal keeps the token
    assert one.lease_holds("payments", "runner-1", token)
    assert two.acquire_lease("cache", "runner-2", 5) is not None  # other dependencies are free
    time.sleep(0.7)
    assert not one.lease_holds("payments", "runner-1", token)  # ran out
    taken = two.acquire_lease("payments", "runner-2", 5)
    assert taken is not None and taken > token
    assert not one.lease_holds("payments", "runner-1", token)
    assert one.acquire_lease("payments", "runner-1", 5) is None  # it came back too late
    two.release_lease("payments", "runner-2", taken)
    again = one.acquire_lease("payments", "runner-1", 5)
    assert again is not None and again > taken


def test_releasing_a_lease_someone_else_took_changes_nothing(open_test_store: OpenStore) -> None:
    store = open_test_store()
    old = store.acquire_lease("payments", "runner-1", 0.2)
    assert old is not None
    time.sleep(0.3)
    new = store.acquire_lease("payments", "runner-2", 5)
    assert new is not None
    store.release_lease("payments", "runner-1", old)
    assert store.lease_holds("payments", "runner-2", new)


def test_an_action_whose_runner_lost_its_lease_is_abandoned_and_taken_over_once(open_test_store: OpenStore) -> None:
    store = open_test_store()
    now = datetime.now(UTC)
    store.enqueue(
        [
            QueuedAlert(
                fingerprint="f1",
                starts_at="2026-01-01T00:00:00Z",
                status="firing",
                dependency="payments",
                instance="payments-a",
                received_at=now,
            )
        ]
    )
    (alert,) = store.pending(now)
    token = store.acquire_lease("payments", "runner-1", 0.3)
    assert token is not None
    store.begin_action(
        ActionRecord(
            action_id="a1",
            kind="rollback",
            dependency="payments",
            instance="payments-a",
            runner_id="runner-1",
            started_at=now,
            queue_ids=alert.queue_ids,
        )
    )
    assert store.abandoned_actions("runner-2") == []  # its lease still runs
    assert store.abandoned_actions("runner-1") == []  # a runner does not take over from itself
    time.sleep(0.4)
    (abandoned,) = store.abandoned_actions("runner-2")
    assert abandoned.action_id == "a1" and abandoned.runner_id == "runner-1"
    assert store.acquire_lease("payments", "runner-2", 5) is not None
    ((record, event),) = store.recover_interrupted("runner-1", now, {"a1": {"taken_over_by": "runner-2"}}, only=["a1"])
    assert record.action_id == "a1" and event.kind == "interrupted"
    assert event.details["taken_over_by"] == "runner-2"
    assert [a.retry_of for a in store.pending(now)] == ["a1"]
    assert store.abandoned_actions("runner-2") == []
    assert store.recover_interrupted("runner-1", now, only=["a1"]) == []  # once only


def test_an_action_is_abandoned_as_soon_as_its_lease_passed_to_another_runner(open_test_store: OpenStore) -> None:
    store = open_test_store()
    now = datetime.now(UTC)
    assert store.acquire_lease("payments", "runner-1", 0.2) is not None
    store.begin_action(
        ActionRecord(
            action_id="a1",
            kind="rollback",
            dependency="payments",
            instance="payments-a",
            runner_id="runner-1",
            started_at=now,
            queue_ids=(),
        )
    )
    time.sleep(0.3)
    assert store.acquire_lease("payments", "runner-2", 30) is not None  # runner-2 holds it, in force
    # Though the lease runs, it is not runner-1's any more: the new holder must close a1 before it acts.
    assert [a.action_id for a in store.abandoned_actions("runner-2")] == ["a1"]
    assert [a.action_id for a in store.abandoned_actions("runner-3")] == ["a1"]
