"""The runner's batched reads on both backends (issue 16): the leases of a dispatch pass in one transaction,
and what its decisions read (primaries, each dependency's last action, each alert's state changes, the
active zonal shifts) in one read, with the answers the single-dependency calls give."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from depmirror.store import Event, QueuedAlert, Store, ZonalShift

OpenStore = Callable[..., Store]


def test_leases_of_a_pass_are_taken_together_with_the_tokens_one_at_a_time_gives(open_test_store: OpenStore) -> None:
    one, two = open_test_store(), open_test_store()  # two runners, two connections
    held = two.acquire_lease("cache", "runner-2", 5)
    assert held is not None
    tokens = one.acquire_leases(["payments", "cache", "ledger", "payments"], "runner-1", 0.5)
    assert sorted(tokens) == ["cache", "ledger", "payments"]
    assert tokens["cache"] is None  # another runner's lease still runs
    payments, ledger = tokens["payments"], tokens["ledger"]
    assert payments is not None and ledger is not None
    assert one.lease_holds("payments", "runner-1", payments) and one.lease_holds("ledger", "runner-1", ledger)
    assert one.acquire_leases(["payments"], "runner-1", 0.5) == {"payments": payments}  # a renewal: same token
    assert two.acquire_leases(["payments", "ledger"], "runner-2", 5) == {"payments": None, "ledger": None}
    time.sleep(0.7)
    taken = two.acquire_leases(["payments"], "runner-2", 5)["payments"]
    assert taken is not None and taken > payments  # a new holder: a new token
    assert one.acquire_leases([], "runner-1", 5) == {}


def _event(dependency: str, kind: str, outcome: str, ago_s: float) -> Event:
    return Event(kind=kind, dependency=dependency, outcome=outcome, time=datetime.now(UTC) - timedelta(seconds=ago_s))


def _alert(fingerprint: str, n: int, received: datetime) -> QueuedAlert:
    return QueuedAlert(
        fingerprint=fingerprint,
        starts_at=f"2026-01-01T00:00:{n:02d}Z",
        status="firing" if n % 2 == 0 else "resolved",
        dependency="payments",
        instance="payments@a",
        received_at=received,
    )


def test_a_pass_s_read_answers_as_the_single_reads(open_test_store: OpenStore) -> None:
    store = open_test_store()
    now = datetime.now(UTC)
    store.set_primary("payments", "vm-a1")
    store.set_primary("cache", "vm-b1")
    store.append_event(_event("payments", "rollback", "succeeded", 100))
    store.append_event(_event("payments", "failback", "error", 50))  # could not start: no cooldown
    store.append_event(_event("payments", "refused", "refused", 40))  # not an action
    store.append_event(_event("ledger", "rollback", "error", 10))  # only actions that could not start
    store.append_event(_event("other", "rollback", "succeeded", 5))  # not asked for
    old = now - timedelta(hours=2)
    store.enqueue([_alert("f1", n, now) for n in range(3)] + [_alert("f1", 9, old), _alert("f2", 0, now)])
    store.start_zonal_shift(
        ZonalShift(
            zone="zone-a", reason="drill", created_by="test", started_ts=now, expires_ts=now + timedelta(hours=1)
        )
    )

    state = store.pass_state(["payments", "ledger", "cache"], ["f1", "f2", "f3"], now - timedelta(hours=1), 50)

    assert state.primaries == store.primaries() == {"payments": "vm-a1", "cache": "vm-b1"}
    assert sorted(state.last_actions) == ["payments"]
    last = state.last_actions["payments"]
    assert (last.kind, last.outcome) == ("rollback", "succeeded")
    assert state.transitions == {"f1": 3, "f2": 1}  # f1's fourth came before `since`
    since = now - timedelta(hours=1)
    assert state.most_transitions(["f1", "f2"]) == store.alert_transitions(["f1", "f2"], since) == 3
    assert state.most_transitions(["f3"]) == store.alert_transitions(["f3"], since) == 0
    assert state.shifts == ()  # not asked for
    with_shifts = store.pass_state(["payments"], [], since, 50, shifts_at=now + timedelta(seconds=1))
    assert [shift.zone for shift in with_shifts.shifts] == ["zone-a"]
    assert with_shifts.transitions == {}


def test_the_last_action_is_looked_for_among_the_newest_lookback_only(open_test_store: OpenStore) -> None:
    # As the cooldown's `events(limit=COOLDOWN_LOOKBACK)`: older than the lookback's newest N counts as none.
    store = open_test_store()
    store.append_event(_event("payments", "rollback", "succeeded", 100))
    for n in range(3):
        store.append_event(_event("payments", "rollback", "error", 50 - n))
    assert store.pass_state(["payments"], [], datetime.now(UTC), 3).last_actions == {}
    assert store.pass_state(["payments"], [], datetime.now(UTC), 4).last_actions["payments"].outcome == "succeeded"
