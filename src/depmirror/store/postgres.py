"""The PostgreSQL store: the SQLite store's semantics on a server that several runners and AWX nodes share.

psycopg 3 with a small connection pool; each method is one transaction (committed, so durable with the
server's default synchronous_commit=on, when it returns). The schema is versioned with Alembic
(postgres_migrate) and brought up to date on open. What differs from SQLite is said where it happens.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from depmirror.store import postgres_rows as rows
from depmirror.store import postgres_runtime as runtime
from depmirror.store.base import (
    PENDING_PER_DEPENDENCY,
    STATS_QUERIES,
    IgnoredEvent,
    OverrideEvent,
    ShiftEvent,
    Store,
)
from depmirror.store.model import (
    EVENT_KINDS,
    ActionRecord,
    EnqueueResult,
    Event,
    EventFilter,
    Override,
    PassState,
    QueuedAlert,
    RfChange,
    ZonalShift,
)
from depmirror.store.postgres_connection import Connections, Cursor
from depmirror.store.postgres_schema import EVENTS_LOCK_KEY, VERSION_TABLE
from depmirror.store.postgres_url import parse

# As SQLite's busy timeout: how long a write waits for another session's lock (lock_timeout).
DEFAULT_BUSY_TIMEOUT_S = 30.0

_INSERT_EVENT = (
    "INSERT INTO events (ts, kind, dependency, instance, target, action, decision, reason, outcome, duration_s,"
    " trigger, inputs, details) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id"
)
# Rows per INSERT: 11 parameters each, under PostgreSQL's 65,535 parameters per statement.
ENQUEUE_CHUNK = 1000
_ALERT_VALUES = "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
_INSERT_ALERTS = (
    "INSERT INTO alert_queue (fingerprint, starts_at, status, dependency, instance, labels, annotations,"
    " group_key, received_ts, not_before_ts, state) VALUES {values}"
    " ON CONFLICT ON CONSTRAINT alert_queue_identity DO NOTHING RETURNING id, fingerprint, starts_at, status"
)
_PENDING = (
    "WITH due AS ("
    " SELECT max(id) AS id, array_agg(id ORDER BY id) AS ids, max(retry_of) AS retry_of,"
    " max(attempts) AS attempts, dependency FROM alert_queue"
    " WHERE state = 'pending' AND not_before_ts <= %s GROUP BY dependency, instance, fingerprint"
    "), ranked AS ("
    " SELECT due.*, row_number() OVER (PARTITION BY dependency ORDER BY id DESC) AS rank FROM due"
    ") SELECT q.id, q.fingerprint, q.starts_at, q.status, q.dependency, q.instance, q.labels, q.annotations,"
    " q.group_key, q.received_ts, q.not_before_ts, r.ids, r.retry_of, r.attempts"
    " FROM ranked r JOIN alert_queue q ON q.id = r.id WHERE r.rank <= %s ORDER BY q.id"
)
_PREFIXED_ACTION_COLUMNS = ", ".join(f"a.{column.strip()}" for column in rows.ACTION_COLUMNS.split(","))
_OPEN_ACTIONS = (
    f"SELECT {rows.ACTION_COLUMNS} FROM actions WHERE runner_id = %s AND finished_ts IS NULL"
    " ORDER BY started_ts, action_id"
)


class PostgresStore(Store):
    """One PostgreSQL database. Thread-safe (a pool of connections); many processes may share it."""

    def __init__(self, url: str, *, create: bool = True, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S):
        target = parse(url)
        self.url = target.shown
        self._db = Connections(target, create=create, busy_timeout_s=busy_timeout_s)
        self._read = self._db.read
        self._write = self._db.write

    # --- history -----------------------------------------------------------------------------------
    def append_event(self, event: Event) -> Event:
        return self._write(lambda cursor: _insert_event(cursor, event))

    def events(self, query: EventFilter | None = None) -> list[Event]:
        query = query or EventFilter()
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("dependency", query.dependency), ("instance", query.instance)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(rows.text(value))
        if query.kinds:
            where.append("kind = ANY(%s)")
            params.append([rows.text(kind) for kind in query.kinds])
        if query.since is not None:
            where.append("ts >= %s")
            params.append(rows.aware(query.since))
        if query.until is not None:
            where.append("ts < %s")
            params.append(rows.aware(query.until))
        if query.after_id is not None:
            where.append("id > %s")
            params.append(query.after_id)
        sql = f"SELECT {rows.EVENT_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if query.limit is not None:
            sql += " LIMIT %s"
            params.append(query.limit)
        return [rows.event_from_row(row) for row in self._read(sql, params)]

    # --- state -------------------------------------------------------------------------------------
    def primary(self, dependency: str) -> str | None:
        found = self._read("SELECT instance FROM primaries WHERE dependency = %s", (rows.text(dependency),))
        return None if not found else str(found[0]["instance"])

    def primaries(self) -> dict[str, str]:
        return {row["dependency"]: row["instance"] for row in self._read("SELECT dependency, instance FROM primaries")}

    def set_primary(self, dependency: str, instance: str) -> None:
        self._write(
            lambda cursor: cursor.execute(
                "INSERT INTO primaries (dependency, instance, ts) VALUES (%s, %s, now()) ON CONFLICT (dependency)"
                " DO UPDATE SET instance = excluded.instance, ts = excluded.ts",
                (rows.text(dependency), rows.text(instance)),
            )
        )

    def applied_plan(self) -> dict[str, Any] | None:
        found = self._read("SELECT plan FROM applied_plan WHERE id = 1")
        return None if not found else dict(found[0]["plan"])

    def set_applied_plan(self, plan: dict[str, Any]) -> None:
        self._write(
            lambda cursor: cursor.execute(
                "INSERT INTO applied_plan (id, plan, ts) VALUES (1, %s, clock_timestamp()) ON CONFLICT (id)"
                " DO UPDATE SET plan = excluded.plan, ts = excluded.ts",
                (rows.jsonb(plan),),
            )
        )

    def record_rf_change(self, decision: RfChange) -> None:
        self._write(
            lambda cursor: cursor.execute(
                "INSERT INTO rf_decisions (dependency, rf, ts) VALUES (%s, %s, %s)",
                (rows.text(decision.dependency), decision.rf, rows.aware(decision.time)),
            )
        )

    def rf_changes(self, dependency: str | None = None, since: datetime | None = None) -> list[RfChange]:
        sql = "SELECT dependency, rf, ts FROM rf_decisions WHERE true"
        params: list[Any] = []
        if dependency is not None:
            sql += " AND dependency = %s"
            params.append(rows.text(dependency))
        if since is not None:
            sql += " AND ts >= %s"
            params.append(rows.aware(since))
        found = self._read(sql + " ORDER BY ts, id", params)
        return [RfChange(dependency=r["dependency"], rf=r["rf"], time=rows.utc(r["ts"])) for r in found]

    # --- queue -------------------------------------------------------------------------------------
    def enqueue(self, alerts: Sequence[QueuedAlert], ignored: IgnoredEvent | None = None) -> EnqueueResult:
        def work(cursor: Cursor) -> int:
            # One statement per chunk: a row comes back only for an alert not seen before, by this runner or
            # another (the unique key decides, not a read before the write), matched by its identity.
            new_ids: dict[tuple[str, str, str], int] = {}
            for start in range(0, len(alerts), ENQUEUE_CHUNK):
                chunk = alerts[start : start + ENQUEUE_CHUNK]
                values = ",".join([_ALERT_VALUES] * len(chunk))
                params = [value for alert in chunk for value in rows.alert_params(alert)]
                for row in cursor.execute(_INSERT_ALERTS.format(values=values), params).fetchall():
                    new_ids[(row["fingerprint"], row["starts_at"], row["status"])] = row["id"]
            queued = 0
            refused: dict[str, list[QueuedAlert]] = {}
            for alert in alerts:
                key = (rows.text(alert.fingerprint), rows.text(alert.starts_at), rows.text(alert.status))
                inserted = new_ids.pop(key, None)  # a repeat inside one batch is a duplicate, as in SQLite
                if inserted is None:
                    continue
                queued += 1
                if alert.ignore_reason is not None:
                    refused.setdefault(alert.ignore_reason, []).append(replace(alert, id=inserted))
            if ignored is not None:
                for reason, group in refused.items():
                    _insert_event(cursor, ignored(group, reason))
            return queued

        count = self._write(work) if alerts else 0
        return EnqueueResult(queued=count, duplicates=len(alerts) - count)

    def pending(self, now: datetime, per_dependency: int = PENDING_PER_DEPENDENCY) -> list[QueuedAlert]:
        found = self._read(_PENDING, (rows.aware(now), per_dependency))
        return [replace(rows.alert_from_row(row), covered_ids=tuple(row["ids"])) for row in found]

    def queue_depth(self) -> int:
        return int(self._read("SELECT count(*) AS n FROM alert_queue WHERE state <> 'done'")[0]["n"])

    def settle(self, queue_ids: Sequence[int], event: Event | None) -> Event | None:
        def work(cursor: Cursor) -> Event | None:
            stored = None if event is None else _insert_event(cursor, event)
            cursor.execute("UPDATE alert_queue SET state = 'done' WHERE id = ANY(%s)", (list(queue_ids),))
            return stored

        return self._write(work)

    def begin_action(self, record: ActionRecord) -> None:
        def work(cursor: Cursor) -> None:
            cursor.execute(
                f"INSERT INTO actions ({rows.ACTION_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                rows.action_params(record),
            )
            cursor.execute(
                "UPDATE alert_queue SET state = 'acting', action_id = %s WHERE id = ANY(%s)",
                (rows.text(record.action_id), list(record.queue_ids)),
            )

        self._write(work)

    def set_action_external_id(self, action_id: str, external_id: str) -> None:
        self._write(
            lambda cursor: cursor.execute(
                "UPDATE actions SET external_id = %s WHERE action_id = %s",
                (rows.text(external_id), rows.text(action_id)),
            )
        )

    def finish_action(self, action_id: str, event: Event) -> Event:
        def work(cursor: Cursor) -> Event:
            stored = _insert_event(cursor, event)
            key = rows.text(action_id)
            cursor.execute("UPDATE actions SET finished_ts = %s WHERE action_id = %s", (rows.aware(event.time), key))
            cursor.execute("UPDATE alert_queue SET state = 'done' WHERE action_id = %s", (key,))
            return stored

        return self._write(work)

    def unfinished_actions(self, runner_id: str) -> list[ActionRecord]:
        return [rows.action_from_row(row) for row in self._read(_OPEN_ACTIONS, (rows.text(runner_id),))]

    def recover_interrupted(
        self,
        runner_id: str,
        now: datetime,
        notes: Mapping[str, dict[str, Any]] | None = None,
        *,
        only: Collection[str] | None = None,
    ) -> list[tuple[ActionRecord, Event]]:
        notes = notes or {}
        rows.aware(now)

        def work(cursor: Cursor) -> list[tuple[ActionRecord, Event]]:
            recovered: list[tuple[ActionRecord, Event]] = []
            # FOR UPDATE: two processes recovering one runner at once close each action once.
            found = cursor.execute(_OPEN_ACTIONS + " FOR UPDATE", (rows.text(runner_id),)).fetchall()
            for record in map(rows.action_from_row, found):
                if only is not None and record.action_id not in only:
                    continue
                event = _insert_event(cursor, _interrupted(record, runner_id, now, notes))
                cursor.execute("UPDATE actions SET finished_ts = %s WHERE action_id = %s", (now, record.action_id))
                cursor.execute(
                    "UPDATE alert_queue SET state = 'pending', retry_of = %s, attempts = attempts + 1,"
                    " action_id = NULL WHERE action_id = %s",
                    (record.action_id, record.action_id),
                )
                recovered.append((record, event))
            return recovered

        return self._write(work)

    def latest_alert(self, dependency: str, instance: str) -> QueuedAlert | None:
        found = self._read(
            f"SELECT {rows.ALERT_COLUMNS} FROM alert_queue WHERE dependency = %s AND instance = %s"
            " ORDER BY id DESC LIMIT 1",
            (rows.text(dependency), rows.text(instance)),
        )
        return None if not found else rows.alert_from_row(found[0])

    def firing_alerts(self, dependency: str, instance: str) -> list[str]:
        found = self._read(
            "SELECT DISTINCT ON (fingerprint) fingerprint, status FROM alert_queue"
            " WHERE dependency = %s AND instance = %s ORDER BY fingerprint, id DESC",
            (rows.text(dependency), rows.text(instance)),
        )
        return [str(row["fingerprint"]) for row in found if row["status"] == "firing"]

    def applied_plan_stamp(self) -> float | None:
        found = self._read("SELECT ts FROM applied_plan WHERE id = 1")
        return None if not found else rows.stamp(found[0]["ts"])

    def alert_transitions(self, fingerprints: Sequence[str], since: datetime) -> int:
        if not fingerprints:
            return 0
        found = self._read(
            "SELECT coalesce(max(n), 0) AS n FROM (SELECT count(*) AS n FROM alert_queue"
            " WHERE fingerprint = ANY(%s) AND received_ts >= %s GROUP BY fingerprint) counts",
            ([rows.text(f) for f in fingerprints], rows.aware(since)),
        )
        return int(found[0]["n"])

    def pass_state(
        self,
        dependencies: Collection[str],
        fingerprints: Collection[str],
        since: datetime,
        lookback: int,
        shifts_at: datetime | None = None,
    ) -> PassState:
        names = sorted({rows.text(name) for name in dependencies})
        prints = sorted({rows.text(fingerprint) for fingerprint in fingerprints})

        def work(cursor: Cursor) -> PassState:
            primaries = {
                row["dependency"]: row["instance"]
                for row in cursor.execute("SELECT dependency, instance FROM primaries").fetchall()
            }
            # Each dependency's newest `lookback` actions by its index (dependency, id), as `events` reads them.
            last = cursor.execute(
                f"SELECT recent.* FROM unnest(%s::text[]) AS d(name) CROSS JOIN LATERAL ("
                f" SELECT {rows.EVENT_COLUMNS} FROM (SELECT {rows.EVENT_COLUMNS} FROM events"
                " WHERE dependency = d.name AND kind = ANY(%s) ORDER BY id DESC LIMIT %s) newest"
                " WHERE outcome <> 'error' ORDER BY id DESC LIMIT 1) recent",
                (names, ["rollback", "failback"], lookback),
            ).fetchall()
            counts = cursor.execute(
                "SELECT fingerprint, count(*) AS n FROM alert_queue WHERE fingerprint = ANY(%s)"
                " AND received_ts >= %s GROUP BY fingerprint",
                (prints, rows.aware(since)),
            ).fetchall()
            shifts: tuple[ZonalShift, ...] = ()
            if shifts_at is not None:
                sql, params = runtime.active_query("zonal_shifts", runtime.SHIFT_COLUMNS, "started_ts", shifts_at)
                shifts = tuple(runtime.shift_from_row(row) for row in cursor.execute(sql, params).fetchall())
            events = [rows.event_from_row(row) for row in last]
            return PassState(
                primaries=primaries,
                last_actions={event.dependency: event for event in events},
                transitions={row["fingerprint"]: int(row["n"]) for row in counts},
                shifts=shifts,
            )

        return self._db.read_many(work)

    def prune_queue(self, before: datetime) -> int:
        return self._write(
            lambda cursor: (
                cursor.execute(
                    "DELETE FROM alert_queue WHERE state = 'done' AND received_ts < %s", (rows.aware(before),)
                ).rowcount
            )
        )

    # --- zonal shifts and overrides (postgres_runtime) ------------------------------------------------
    def start_zonal_shift(
        self, shift: ZonalShift, *, max_active: int | None = None, event: ShiftEvent | None = None
    ) -> ZonalShift:
        def work(cursor: Cursor) -> ZonalShift:
            stored = runtime.start_shift(cursor, shift, max_active=max_active, url=self.url)
            if event is not None:
                _insert_event(cursor, event(stored))
            return stored

        return self._write(work)

    def zonal_shifts(self, active_at: datetime | None = None) -> list[ZonalShift]:
        sql, params = runtime.active_query("zonal_shifts", runtime.SHIFT_COLUMNS, "started_ts", active_at)
        return [runtime.shift_from_row(row) for row in self._db.read(sql, params)]

    def end_zonal_shift(
        self, zone: str, *, ended_ts: datetime, end_reason: str, event: ShiftEvent | None = None
    ) -> ZonalShift | None:
        def work(cursor: Cursor) -> ZonalShift | None:
            ended = runtime.end_shift(cursor, zone, ended_ts=ended_ts, end_reason=end_reason)
            if ended is not None and event is not None:
                _insert_event(cursor, event(ended))
            return ended

        return self._write(work)

    def set_override(self, override: Override, *, event: OverrideEvent | None = None) -> Override:
        def work(cursor: Cursor) -> Override:
            stored = runtime.set_override(cursor, override)
            if event is not None:
                _insert_event(cursor, event(stored))
            return stored

        return self._write(work)

    def overrides(self, active_at: datetime | None = None) -> list[Override]:
        sql, params = runtime.active_query("overrides", runtime.OVERRIDE_COLUMNS, "created_ts", active_at)
        return [runtime.override_from_row(row) for row in self._db.read(sql, params)]

    def end_override(
        self, dependency: str, *, ended_ts: datetime, end_reason: str, event: OverrideEvent | None = None
    ) -> Override | None:
        def work(cursor: Cursor) -> Override | None:
            ended = runtime.end_override(cursor, dependency, ended_ts=ended_ts, end_reason=end_reason)
            if ended is not None and event is not None:
                _insert_event(cursor, event(ended))
            return ended

        return self._write(work)

    # --- leases (the server's clock: every runner agrees on when a lease runs out) ------------------
    def acquire_lease(self, dependency: str, holder: str, ttl_s: float) -> int | None:
        return self._write(lambda cursor: _take_lease(cursor, dependency, holder, ttl_s))

    def acquire_leases(self, dependencies: Sequence[str], holder: str, ttl_s: float) -> dict[str, int | None]:
        # In the order of their names: two runners taking overlapping sets lock the rows in the same order.
        names = sorted(set(dependencies))

        def work(cursor: Cursor) -> dict[str, int | None]:
            return {name: _take_lease(cursor, name, holder, ttl_s) for name in names}

        return self._write(work) if names else {}

    def lease_holds(self, dependency: str, holder: str, token: int) -> bool:
        found = self._read(
            "SELECT 1 AS held FROM leases WHERE dependency = %s AND holder = %s AND token = %s"
            " AND expires_ts >= clock_timestamp()",
            (rows.text(dependency), rows.text(holder), token),
        )
        return bool(found)

    def release_lease(self, dependency: str, holder: str, token: int) -> None:
        self._write(
            lambda cursor: cursor.execute(
                "UPDATE leases SET expires_ts = '-infinity' WHERE dependency = %s AND holder = %s AND token = %s",
                (rows.text(dependency), rows.text(holder), token),
            )
        )

    def abandoned_actions(self, holder: str) -> list[ActionRecord]:
        found = self._read(
            f"SELECT {_PREFIXED_ACTION_COLUMNS} FROM actions a LEFT JOIN leases l ON l.dependency = a.dependency"
            " WHERE a.finished_ts IS NULL AND a.runner_id != %s"
            " AND (l.expires_ts IS NULL OR l.expires_ts < clock_timestamp() OR l.holder != a.runner_id)"
            " ORDER BY a.started_ts, a.action_id",
            (rows.text(holder),),
        )
        return [rows.action_from_row(row) for row in found]

    def stats(self) -> dict[str, Any]:
        counts = {
            name: int(self._read(f"{sql.replace('count(*)', 'count(*) AS n', 1)}")[0]["n"])
            for name, sql in STATS_QUERIES
        }
        held = self._read("SELECT count(*) AS n FROM leases WHERE expires_ts >= clock_timestamp()")
        version = self._read(f"SELECT version_num FROM {VERSION_TABLE}")
        return {
            "backend": "postgresql",
            "url": self.url,
            "schema": str(version[0]["version_num"]) if version else "none",
            **counts,
            "leases_held": int(held[0]["n"]),
        }

    # --- lifecycle ---------------------------------------------------------------------------------
    def check(self) -> None:
        self._read("SELECT 1 FROM events LIMIT 1")

    def check_writable(self) -> None:
        self._db.probe_writable()

    def close(self) -> None:
        self._db.close()


def _take_lease(cursor: Cursor, dependency: str, holder: str, ttl_s: float) -> int | None:
    row = cursor.execute(
        "INSERT INTO leases (dependency, holder, token, expires_ts)"
        " VALUES (%(dependency)s, %(holder)s, 1, clock_timestamp() + %(ttl)s * interval '1 second')"
        " ON CONFLICT (dependency) DO UPDATE SET"
        " token = CASE WHEN leases.holder = excluded.holder AND leases.expires_ts >= clock_timestamp()"
        " THEN leases.token ELSE leases.token + 1 END,"
        " holder = excluded.holder, expires_ts = excluded.expires_ts"
        " WHERE leases.expires_ts < clock_timestamp() OR leases.holder = excluded.holder"
        " RETURNING token",
        {"dependency": rows.text(dependency), "holder": rows.text(holder), "ttl": ttl_s},
    ).fetchone()
    return None if row is None else int(row["token"])


def _insert_event(cursor: Cursor, event: Event) -> Event:
    if event.kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {event.kind!r}; known: {', '.join(EVENT_KINDS)}")
    # Ids in commit order: appends take turns from here to their commit (a few ms), so an event with a
    # smaller id is never committed after one with a larger id (SQLite's single writer gives that for free).
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK_KEY,))
    inserted = cursor.execute(_INSERT_EVENT, rows.event_params(event)).fetchone()
    if inserted is None:
        raise RuntimeError("INSERT ... RETURNING gave no id")
    return replace(event, id=int(inserted["id"]))


def _interrupted(record: ActionRecord, runner_id: str, now: datetime, notes: Mapping[str, dict[str, Any]]) -> Event:
    return Event(
        kind="interrupted",
        action=record.kind,
        dependency=record.dependency,
        instance=record.instance,
        time=now,
        trigger=record.trigger,
        inputs=record.inputs,
        decision="reevaluate",
        reason=f"runner {runner_id} stopped while the {record.kind} was running",
        outcome="interrupted",
        duration_s=max(0.0, now.timestamp() - record.started_at.timestamp()),
        details={"action_id": record.action_id, "external_id": record.external_id, **notes.get(record.action_id, {})},
    )
