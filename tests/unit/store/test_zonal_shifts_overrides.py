"""Zonal shifts and overrides through the Store interface: the same assertions on a real SQLite file and a
real PostgreSQL database (conftest.py), including two writers racing on one zone."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from depmirror.store import Event, EventFilter, Override, Store, StoreConflict, ZonalShift, open_store
from depmirror.store.copy import copy_store
from depmirror.store.postgres_schema import VERSION_TABLE

OpenStore = Callable[..., Store]
T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def _shift(zone: str = "zone-a", start: datetime = T0, hours: float = 1.0, **kw: object) -> ZonalShift:
    return ZonalShift(
        zone=zone,
        reason=str(kw.pop("reason", "zone alert")),
        created_by=str(kw.pop("created_by", "runner-1")),
        started_ts=start,
        expires_ts=start + timedelta(hours=hours),
        **kw,  # type: ignore[arg-type]
    )


def _override(dependency: str = "payments", start: datetime = T0, hours: float = 2.0, **kw: object) -> Override:
    fields: dict[str, object] = {"rf_min": 3, "rf_max": None, "unhealthy": None, "rollback": "frozen"}
    fields.update(kw)
    return Override(
        dependency=dependency,
        reason="sale week",
        created_by="alice",
        created_ts=start,
        expires_ts=start + timedelta(hours=hours),
        **fields,  # type: ignore[arg-type]
    )


def test_a_shift_round_trips_and_is_active_until_its_expiry(open_test_store: OpenStore) -> None:
    with open_test_store() as store:
        stored = store.start_zonal_shift(_shift(reason="<script>{{ x }}</script>; rm -rf /"))
        assert stored.id is not None and stored.zone == "zone-a" and stored.reason.endswith("rm -rf /")
        assert stored.started_ts == T0 and stored.expires_ts == T0 + timedelta(hours=1)
        assert store.zonal_shifts(active_at=T0 + timedelta(minutes=59)) == [stored]
        assert store.zonal_shifts(active_at=T0 + timedelta(hours=1)) == []
        assert store.zonal_shifts(active_at=T0 - timedelta(seconds=1)) == []
        assert store.zonal_shifts() == [stored]


def test_a_second_shift_of_the_same_zone_is_refused_with_the_one_in_force(open_test_store: OpenStore) -> None:
    with open_test_store() as store:
        first = store.start_zonal_shift(_shift())
        with pytest.raises(StoreConflict, match="zone 'zone-a' is already shifted") as refused:
            store.start_zonal_shift(_shift(start=T0 + timedelta(minutes=5), created_by="runner-2"))
        assert refused.value.existing == first
        assert store.zonal_shifts() == [first]


def test_max_active_counts_the_shifts_of_other_zones(open_test_store: OpenStore) -> None:
    with open_test_store() as store:
        store.start_zonal_shift(_shift("zone-a"), max_active=1)
        with pytest.raises(StoreConflict, match=r"1 zone\(s\) already shifted \(zone-a\), at most 1"):
            store.start_zonal_shift(_shift("zone-b"), max_active=1)
        assert store.start_zonal_shift(_shift("zone-b"), max_active=2).zone == "zone-b"
        assert [s.zone for s in store.zonal_shifts(active_at=T0)] == ["zone-a", "zone-b"]


def test_ending_a_shift_returns_it_once_and_records_its_event_atomically(open_test_store: OpenStore) -> None:
    def event(shift: ZonalShift) -> Event:
        return Event(kind="zonal_shift_end", dependency="-", outcome="succeeded", reason=str(shift.end_reason))

    with open_test_store() as store:
        store.start_zonal_shift(_shift())
        ended = store.end_zonal_shift("zone-a", ended_ts=T0 + timedelta(minutes=10), end_reason="zone end", event=event)
        assert ended is not None and ended.end_reason == "zone end"
        assert ended.ended_ts == T0 + timedelta(minutes=10)
        again = store.end_zonal_shift("zone-a", ended_ts=T0 + timedelta(minutes=11), end_reason="x", event=event)
        assert again is None
        assert store.end_zonal_shift("zone-nowhere", ended_ts=T0, end_reason="x") is None
        assert store.zonal_shifts(active_at=T0 + timedelta(minutes=20)) == []
        assert store.zonal_shifts(active_at=T0 + timedelta(minutes=5)) == [ended]
        assert [e.reason for e in store.events(EventFilter(kinds=("zonal_shift_end",)))] == ["zone end"]
        # Ended, the zone can be shifted again.
        assert store.start_zonal_shift(_shift(start=T0 + timedelta(minutes=30))).id != ended.id


def test_an_expired_open_shift_is_ended_as_expired_by_the_next_one(open_test_store: OpenStore) -> None:
    with open_test_store() as store:
        old = store.start_zonal_shift(_shift(hours=1))
        new = store.start_zonal_shift(_shift(start=T0 + timedelta(hours=2)))
        first, second = store.zonal_shifts()
        assert first.id == old.id and first.end_reason == "expired" and first.ended_ts == old.expires_ts
        assert second == new and new.ended_ts is None


def test_a_shift_event_and_the_shift_commit_together(open_test_store: OpenStore) -> None:
    def bad_event(shift: ZonalShift) -> Event:
        return Event(kind="no-such-kind", dependency="-", outcome="x")

    def event(shift: ZonalShift) -> Event:
        return Event(kind="zonal_shift", dependency="-", outcome="succeeded", details={"shift_id": shift.id})

    with open_test_store() as store:
        with pytest.raises(ValueError, match="unknown event kind"):
            store.start_zonal_shift(_shift(), event=bad_event)
        assert store.zonal_shifts() == []
        stored = store.start_zonal_shift(_shift(), event=event)
        (recorded,) = store.events(EventFilter(kinds=("zonal_shift",)))
        assert recorded.details == {"shift_id": stored.id}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"expires_ts": T0}, "expires_ts must be after started_ts"),
        ({"started_ts": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"zone": ""}, "zone must be a non-empty string"),
        ({"reason": "x" * 5000}, "longer than"),
        ({"ended_ts": T0 + timedelta(minutes=1)}, "ended_ts and end_reason go together"),
    ],
)
def test_bad_shifts_are_refused_and_nothing_is_stored(
    open_test_store: OpenStore, change: dict[str, object], message: str
) -> None:
    with open_test_store() as store:
        with pytest.raises(ValueError, match=message):
            store.start_zonal_shift(replace(_shift(), **change))  # type: ignore[arg-type]
        assert store.zonal_shifts() == []


def test_racing_writers_start_one_shift_of_a_zone(open_test_store: OpenStore) -> None:
    stores = [open_test_store() for _ in range(4)]
    started: list[ZonalShift] = []
    refused: list[StoreConflict] = []
    gate = threading.Barrier(len(stores))

    def start(store: Store, n: int) -> None:
        gate.wait(timeout=10)
        try:
            started.append(store.start_zonal_shift(_shift(created_by=f"runner-{n}"), max_active=1))
        except StoreConflict as error:
            refused.append(error)

    threads = [threading.Thread(target=start, args=(store, n)) for n, store in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(started) == 1 and len(refused) == 3
    assert stores[0].zonal_shifts() == started


def test_an_override_round_trips_and_replaces_the_dependency_one(open_test_store: OpenStore) -> None:
    with open_test_store() as store:
        first = store.set_override(_override(unhealthy=0.25))
        assert first.id is not None and first.rf_min == 3 and first.rollback == "frozen" and first.unhealthy == 0.25
        star = store.set_override(_override("*", rf_min=None, rollback="shadow"))
        later = T0 + timedelta(minutes=30)
        second = store.set_override(_override(start=later, rf_min=None, rf_max=4, rollback=None))
        everything = store.overrides()
        assert [o.id for o in everything] == [first.id, star.id, second.id]
        assert everything[0].end_reason == "replaced" and everything[0].ended_ts == later
        assert store.overrides(active_at=later + timedelta(minutes=1)) == [star, second]
        assert store.overrides(active_at=later - timedelta(minutes=1)) == [everything[0], star]
        ended = store.end_override("*", ended_ts=later + timedelta(minutes=5), end_reason="cleared by alice")
        assert ended is not None and ended.end_reason == "cleared by alice"
        assert store.end_override("*", ended_ts=later, end_reason="again") is None
        assert store.overrides(active_at=later + timedelta(minutes=6)) == [second]


def test_an_override_that_ran_out_is_ended_as_expired_when_replaced(open_test_store: OpenStore) -> None:
    with open_test_store() as store:
        old = store.set_override(_override(hours=1))
        store.set_override(_override(start=T0 + timedelta(hours=3)))
        first = store.overrides()[0]
        assert first.end_reason == "expired" and first.ended_ts == old.expires_ts
        assert store.overrides(active_at=T0 + timedelta(hours=2)) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rollback": "yolo"}, "rollback must be one of auto, manual, shadow, frozen"),
        ({"rf_min": 0}, "rf_min must be a whole number"),
        ({"rf_min": 5, "rf_max": 2}, "rf_min must not exceed rf_max"),
        ({"unhealthy": 1.5}, "unhealthy must be a health score"),
        ({"unhealthy": float("nan")}, "unhealthy must be a health score"),
        ({"expires_ts": T0 - timedelta(hours=1)}, "expires_ts must be after created_ts"),
    ],
)
def test_bad_overrides_are_refused_and_nothing_is_stored(
    open_test_store: OpenStore, change: dict[str, object], message: str
) -> None:
    with open_test_store() as store:
        store.set_override(_override())
        with pytest.raises(ValueError, match=message):
            store.set_override(replace(_override(start=T0 + timedelta(minutes=1)), **change))  # type: ignore[arg-type]
        (kept,) = store.overrides()
        assert kept.ended_ts is None


def test_text_with_nul_and_markup_is_stored(open_test_store: OpenStore) -> None:
    with open_test_store() as store:
        shift = store.start_zonal_shift(_shift(reason="a\x00b {{ lookup('pipe', 'id') }}"))
        assert shift.reason in ("a\x00b {{ lookup('pipe', 'id') }}", "a\ufffdb {{ lookup('pipe', 'id') }}")
        assert store.zonal_shifts() == [shift]


def test_stats_count_shifts_and_overrides(open_test_store: OpenStore) -> None:
    with open_test_store() as store:
        store.start_zonal_shift(_shift())
        store.set_override(_override())
        store.set_override(_override(start=T0 + timedelta(minutes=1)))
        stats = store.stats()
    assert stats["zonal_shifts"] == 1 and stats["overrides"] == 2


def test_store_copy_carries_shifts_and_overrides_in_order(tmp_path: Path, postgres_database: str) -> None:
    with open_store(f"sqlite:///{tmp_path / 'one.db'}") as source, open_store(postgres_database) as target:
        source.start_zonal_shift(_shift("zone-a"))
        source.end_zonal_shift("zone-a", ended_ts=T0 + timedelta(minutes=3), end_reason="zone end")
        source.start_zonal_shift(_shift("zone-b", start=T0 + timedelta(minutes=5)))
        source.set_override(_override())
        source.set_override(_override(start=T0 + timedelta(minutes=2), rollback="auto"))
        report = copy_store(source, target)
        assert report.counts["zonal_shifts"] == 2 and report.counts["overrides"] == 2
        strip = [replace(s, id=None) for s in source.zonal_shifts()]
        assert [replace(s, id=None) for s in target.zonal_shifts()] == strip
        assert [replace(o, id=None) for o in target.overrides()] == [replace(o, id=None) for o in source.overrides()]
        # The copy keeps what is open: the target refuses a second shift of zone-b as the source would.
        with pytest.raises(StoreConflict):
            target.start_zonal_shift(_shift("zone-b", start=T0 + timedelta(minutes=6)))


def test_a_sqlite_store_of_schema_2_is_brought_up_to_date_keeping_its_history(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with open_store(f"sqlite:///{path}") as store:
        store.append_event(Event(kind="rollback", dependency="payments", outcome="succeeded"))
    raw = sqlite3.connect(path)
    raw.executescript("DROP TABLE zonal_shifts; DROP TABLE overrides; PRAGMA user_version = 2;")
    raw.close()
    with open_store(f"sqlite:///{path}") as store:
        assert store.stats()["schema"] == "3" and [e.kind for e in store.events()] == ["rollback"]
        assert store.start_zonal_shift(_shift()).id is not None


def test_a_postgresql_store_at_revision_0002_is_migrated_keeping_its_history(postgres_database: str) -> None:
    with open_store(postgres_database) as store:
        store.append_event(Event(kind="rollback", dependency="payments", outcome="succeeded"))
    with psycopg.connect(postgres_database, autocommit=True) as raw:
        raw.execute("DROP TABLE zonal_shifts; DROP TABLE overrides")
        raw.execute(f"UPDATE {VERSION_TABLE} SET version_num = '0002'")
    with open_store(postgres_database) as store:
        assert store.stats()["schema"] == "0003" and [e.kind for e in store.events()] == ["rollback"]
        assert store.set_override(_override()).id is not None
