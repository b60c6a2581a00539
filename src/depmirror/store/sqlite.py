"""The SQLite store: WAL, synchronous=FULL (every commit is fsynced), a busy timeout for other writers."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from depmirror.store import sqlite_runtime as runtime
from depmirror.store.base import (
    PENDING_PER_DEPENDENCY,
    STATS_QUERIES,
    IgnoredEvent,
    OverrideEvent,
    ShiftEvent,
    Store,
    StoreError,
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
from depmirror.store.sqlite_failures import explain, refuse_unopenable, refuse_unwritable
from depmirror.store.sqlite_schema import SCHEMA, SCHEMA_VERSION

# Long enough to ride out another process's fsync-heavy burst, short enough that a wedged writer shows.
DEFAULT_BUSY_TIMEOUT_S = 30.0
# check_writable (readiness) waits this long for the write lock, so that /readyz answers within a second.
WRITABLE_CHECK_TIMEOUT_S = 0.5

# Connections of one process to one file take turns here rather than in SQLite's busy handler, which
# sleeps in steps of up to 100 ms: the runner's webhook and worker share a file and the 202 must stay fast.
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(key, threading.Lock())


# Values per `IN (...)` list: well under SQLite's limit on the parameters of one statement.
_IN_CHUNK = 500
_EVENT_COLUMNS = (
    "id, ts, kind, dependency, instance, target, action, decision, reason, outcome, duration_s, "
    "trigger, inputs, details"
)
_PENDING_COLUMNS = (
    "q.id, q.fingerprint, q.starts_at, q.status, q.dependency, q.instance, q.labels, q.annotations,"
    " q.group_key, q.received_ts, q.not_before_ts"
)
_ALERT_COLUMNS = (
    "id, fingerprint, starts_at, status, dependency, instance, labels, annotations, group_key, "
    "received_ts, not_before_ts, retry_of, attempts"
)


def _ts(when: datetime) -> float:
    if when.tzinfo is None:
        raise ValueError("store times must be timezone-aware (UTC)")
    return when.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _event_from_row(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        time=_dt(row["ts"]),
        kind=row["kind"],
        dependency=row["dependency"],
        instance=row["instance"],
        target=row["target"],
        action=row["action"],
        decision=row["decision"],
        reason=row["reason"],
        outcome=row["outcome"],
        duration_s=row["duration_s"],
        trigger=json.loads(row["trigger"]),
        inputs=json.loads(row["inputs"]),
        details=json.loads(row["details"]),
    )


def _action_from_row(row: sqlite3.Row) -> ActionRecord:
    return ActionRecord(
        action_id=row["action_id"],
        kind=row["kind"],
        dependency=row["dependency"],
        instance=row["instance"],
        runner_id=row["runner_id"],
        started_at=_dt(row["started_ts"]),
        queue_ids=tuple(json.loads(row["queue_ids"])),
        external_id=row["external_id"],
        trigger=json.loads(row["trigger"]),
        inputs=json.loads(row["inputs"]),
    )


def _alert_from_row(row: sqlite3.Row) -> QueuedAlert:
    return QueuedAlert(
        id=row["id"],
        fingerprint=row["fingerprint"],
        starts_at=row["starts_at"],
        status=row["status"],
        dependency=row["dependency"],
        instance=row["instance"],
        labels=json.loads(row["labels"]),
        annotations=json.loads(row["annotations"]),
        group_key=row["group_key"],
        received_at=_dt(row["received_ts"]),
        not_before=_dt(row["not_before_ts"]),
        retry_of=row["retry_of"],
        attempts=row["attempts"],
    )


class SQLiteStore(Store):
    """One SQLite file. Thread-safe (one connection behind a lock); several processes may share the file."""

    def __init__(self, path: str | Path, *, create: bool = True, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path.resolve()}"
        self._busy_timeout_s = busy_timeout_s
        # A broken store must fail before SQLite writes anything: an empty file would become a new store.
        refuse_unopenable(self.path, create=create)
        self._lock = threading.Lock()
        self._file_lock = _file_lock(self.path)
        try:
            self._db = self._connect(create=create)
        except sqlite3.Error as error:
            raise explain(self.path, error, busy_timeout_s=busy_timeout_s) from error

    def _connect(self, *, create: bool) -> sqlite3.Connection:
        uri = _uri(self.path, create=create)
        db = sqlite3.connect(uri, uri=True, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False)
        try:
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            # Read before anything writes: a corrupt or truncated file fails here, left as it was.
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(
                    str(self.path),
                    f"cannot switch to WAL (journal_mode is {mode})",
                    "put the store on a local file system (WAL needs shared memory beside the file)",
                )
            # FULL: the WAL is fsynced at every commit, so a returned append survives power loss.
            db.execute("PRAGMA synchronous = FULL")
            # One IMMEDIATE transaction: processes opening a new file at once must not race on the DDL.
            with self._lock:
                db.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;")
        except BaseException:
            db.close()  # removes the -wal and -shm files this connection created
            raise
        return db

    # --- transactions ----------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front: a deferred transaction that upgrades later can fail
        # with SQLITE_BUSY without waiting for the busy timeout when another process writes.
        with self._lock, self._file_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    # --- history -----------------------------------------------------------------------------------
    def append_event(self, event: Event) -> Event:
        with self._write() as db:
            return self._insert_event(db, event)

    def _insert_event(self, db: sqlite3.Connection, event: Event) -> Event:
        if event.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {event.kind!r}; known: {', '.join(EVENT_KINDS)}")
        cursor = db.execute(
            "INSERT INTO events (ts, kind, dependency, instance, target, action, decision, reason, outcome,"
            " duration_s, trigger, inputs, details) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                _ts(event.time),
                event.kind,
                event.dependency,
                event.instance,
                event.target,
                event.action,
                event.decision,
                event.reason,
                event.outcome,
                event.duration_s,
                _json(event.trigger),
                _json(event.inputs),
                _json(event.details),
            ),
        )
        return _replace_id(event, cursor.lastrowid)

    def events(self, query: EventFilter | None = None) -> list[Event]:
        query = query or EventFilter()
        where: list[str] = []
        params: list[Any] = []
        if query.dependency is not None:
            where.append("dependency = ?")
            params.append(query.dependency)
        if query.instance is not None:
            where.append("instance = ?")
            params.append(query.instance)
        if query.kinds:
            where.append(f"kind IN ({','.join('?' * len(query.kinds))})")
            params.extend(query.kinds)
        if query.since is not None:
            where.append("ts >= ?")
            params.append(_ts(query.since))
        if query.until is not None:
            where.append("ts < ?")
            params.append(_ts(query.until))
        if query.after_id is not None:
            where.append("id > ?")
            params.append(query.after_id)
        sql = f"SELECT {_EVENT_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(query.limit)
        with self._read() as db:
            return [_event_from_row(row) for row in db.execute(sql, params)]

    # --- state -------------------------------------------------------------------------------------
    def primary(self, dependency: str) -> str | None:
        with self._read() as db:
            row = db.execute("SELECT instance FROM primaries WHERE dependency = ?", (dependency,)).fetchone()
        return None if row is None else str(row[0])

    def primaries(self) -> dict[str, str]:
        with self._read() as db:
            return {row[0]: row[1] for row in db.execute("SELECT dependency, instance FROM primaries")}

    def set_primary(self, dependency: str, instance: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO primaries (dependency, instance, ts) VALUES (?,?,?) ON CONFLICT (dependency)"
                " DO UPDATE SET instance = excluded.instance, ts = excluded.ts",
                (dependency, instance, _ts(datetime.now(UTC))),
            )

    def applied_plan(self) -> dict[str, Any] | None:
        with self._read() as db:
            row = db.execute("SELECT plan FROM applied_plan WHERE id = 1").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def set_applied_plan(self, plan: dict[str, Any]) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO applied_plan (id, plan, ts) VALUES (1, ?, ?) ON CONFLICT (id)"
                " DO UPDATE SET plan = excluded.plan, ts = excluded.ts",
                (_json(plan), _ts(datetime.now(UTC))),
            )

    def record_rf_change(self, decision: RfChange) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO rf_decisions (dependency, rf, ts) VALUES (?,?,?)",
                (decision.dependency, decision.rf, _ts(decision.time)),
            )

    def rf_changes(self, dependency: str | None = None, since: datetime | None = None) -> list[RfChange]:
        sql = "SELECT dependency, rf, ts FROM rf_decisions WHERE 1=1"
        params: list[Any] = []
        if dependency is not None:
            sql += " AND dependency = ?"
            params.append(dependency)
        if since is not None:
            sql += " AND ts >= ?"
            params.append(_ts(since))
        with self._read() as db:
            rows = db.execute(sql + " ORDER BY ts, id", params).fetchall()
        return [RfChange(dependency=r[0], rf=r[1], time=_dt(r[2])) for r in rows]

    # --- queue -------------------------------------------------------------------------------------
    def enqueue(self, alerts: Sequence[QueuedAlert], ignored: IgnoredEvent | None = None) -> EnqueueResult:
        queued = 0
        refused: dict[str, list[QueuedAlert]] = {}
        with self._write() as db:
            for alert in alerts:
                not_before = alert.not_before or alert.received_at
                cursor = db.execute(
                    "INSERT OR IGNORE INTO alert_queue (fingerprint, starts_at, status, dependency, instance,"
                    " labels, annotations, group_key, received_ts, not_before_ts, state)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        alert.fingerprint,
                        alert.starts_at,
                        alert.status,
                        alert.dependency,
                        alert.instance,
                        _json(alert.labels),
                        _json(alert.annotations),
                        alert.group_key,
                        _ts(alert.received_at),
                        _ts(not_before),
                        "pending" if alert.ignore_reason is None else "done",
                    ),
                )
                queued += cursor.rowcount
                if cursor.rowcount and alert.ignore_reason is not None:
                    refused.setdefault(alert.ignore_reason, []).append(replace(alert, id=cursor.lastrowid))
            if ignored is not None:
                for reason, group in refused.items():
                    self._insert_event(db, ignored(group, reason))
        return EnqueueResult(queued=queued, duplicates=len(alerts) - queued)

    def pending(self, now: datetime, per_dependency: int = PENDING_PER_DEPENDENCY) -> list[QueuedAlert]:
        with self._read() as db:
            rows = db.execute(
                "WITH due AS ("
                " SELECT max(id) AS id, group_concat(id) AS ids, max(retry_of) AS retry_of,"
                " max(attempts) AS attempts, dependency FROM alert_queue"
                " WHERE state = 'pending' AND not_before_ts <= ? GROUP BY dependency, instance, fingerprint"
                "), ranked AS ("
                " SELECT due.*, row_number() OVER (PARTITION BY dependency ORDER BY id DESC) AS rank FROM due"
                f") SELECT {_PENDING_COLUMNS}, r.ids, r.retry_of, r.attempts"
                " FROM ranked r JOIN alert_queue q ON q.id = r.id WHERE r.rank <= ? ORDER BY q.id",
                (_ts(now), per_dependency),
            ).fetchall()
        return [
            replace(_alert_from_row(row), covered_ids=tuple(sorted(int(i) for i in row["ids"].split(","))))
            for row in rows
        ]

    def queue_depth(self) -> int:
        with self._read() as db:
            row = db.execute("SELECT count(*) FROM alert_queue WHERE state != 'done'").fetchone()
        return int(row[0])

    def settle(self, queue_ids: Sequence[int], event: Event | None) -> Event | None:
        with self._write() as db:
            stored = None if event is None else self._insert_event(db, event)
            db.executemany("UPDATE alert_queue SET state = 'done' WHERE id = ?", [(i,) for i in queue_ids])
            return stored

    def begin_action(self, record: ActionRecord) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO actions (action_id, kind, dependency, instance, runner_id, started_ts,"
                " queue_ids, external_id, trigger, inputs) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    record.action_id,
                    record.kind,
                    record.dependency,
                    record.instance,
                    record.runner_id,
                    _ts(record.started_at),
                    _json(list(record.queue_ids)),
                    record.external_id,
                    _json(record.trigger),
                    _json(record.inputs),
                ),
            )
            db.executemany(
                "UPDATE alert_queue SET state = 'acting', action_id = ? WHERE id = ?",
                [(record.action_id, i) for i in record.queue_ids],
            )

    def set_action_external_id(self, action_id: str, external_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE actions SET external_id = ? WHERE action_id = ?", (external_id, action_id))

    def finish_action(self, action_id: str, event: Event) -> Event:
        with self._write() as db:
            stored = self._insert_event(db, event)
            db.execute("UPDATE actions SET finished_ts = ? WHERE action_id = ?", (_ts(event.time), action_id))
            db.execute("UPDATE alert_queue SET state = 'done' WHERE action_id = ?", (action_id,))
            return stored

    def unfinished_actions(self, runner_id: str) -> list[ActionRecord]:
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM actions WHERE runner_id = ? AND finished_ts IS NULL ORDER BY started_ts",
                (runner_id,),
            ).fetchall()
        return [_action_from_row(row) for row in rows]

    def recover_interrupted(
        self,
        runner_id: str,
        now: datetime,
        notes: Mapping[str, dict[str, Any]] | None = None,
        *,
        only: Collection[str] | None = None,
    ) -> list[tuple[ActionRecord, Event]]:
        recovered: list[tuple[ActionRecord, Event]] = []
        notes = notes or {}
        with self._write() as db:
            rows = db.execute(
                "SELECT * FROM actions WHERE runner_id = ? AND finished_ts IS NULL ORDER BY started_ts",
                (runner_id,),
            ).fetchall()
            for row in rows:
                record = _action_from_row(row)
                if only is not None and record.action_id not in only:
                    continue
                event = self._insert_event(
                    db,
                    Event(
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
                        duration_s=max(0.0, _ts(now) - _ts(record.started_at)),
                        details={
                            "action_id": record.action_id,
                            "external_id": record.external_id,
                            **notes.get(record.action_id, {}),
                        },
                    ),
                )
                db.execute("UPDATE actions SET finished_ts = ? WHERE action_id = ?", (_ts(now), record.action_id))
                db.execute(
                    "UPDATE alert_queue SET state = 'pending', retry_of = ?, attempts = attempts + 1,"
                    " action_id = NULL WHERE action_id = ?",
                    (record.action_id, record.action_id),
                )
                recovered.append((record, event))
        return recovered

    def latest_alert(self, dependency: str, instance: str) -> QueuedAlert | None:
        with self._read() as db:
            row = db.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alert_queue WHERE dependency = ? AND instance = ?"
                " ORDER BY id DESC LIMIT 1",
                (dependency, instance),
            ).fetchone()
        return None if row is None else _alert_from_row(row)

    def firing_alerts(self, dependency: str, instance: str) -> list[str]:
        with self._read() as db:
            rows = db.execute(
                "SELECT q.fingerprint FROM alert_queue q JOIN (SELECT max(id) AS id FROM alert_queue"
                " WHERE dependency = ? AND instance = ? GROUP BY fingerprint) latest ON q.id = latest.id"
                " WHERE q.status = 'firing' ORDER BY q.fingerprint",
                (dependency, instance),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def applied_plan_stamp(self) -> float | None:
        with self._read() as db:
            row = db.execute("SELECT ts FROM applied_plan WHERE id = 1").fetchone()
        return None if row is None else float(row[0])

    def alert_transitions(self, fingerprints: Sequence[str], since: datetime) -> int:
        if not fingerprints:
            return 0
        marks = ",".join("?" * len(fingerprints))
        with self._read() as db:
            row = db.execute(
                f"SELECT max(n) FROM (SELECT count(*) AS n FROM alert_queue WHERE fingerprint IN ({marks})"
                " AND received_ts >= ? GROUP BY fingerprint)",
                (*fingerprints, _ts(since)),
            ).fetchone()
        return int(row[0] or 0)

    def pass_state(
        self,
        dependencies: Collection[str],
        fingerprints: Collection[str],
        since: datetime,
        lookback: int,
        shifts_at: datetime | None = None,
    ) -> PassState:
        prints = sorted(set(fingerprints))
        transitions: dict[str, int] = {}
        last: dict[str, Event] = {}
        with self._read() as db:
            shifts = () if shifts_at is None else tuple(runtime.shifts(db, shifts_at))
            primaries = {row[0]: row[1] for row in db.execute("SELECT dependency, instance FROM primaries")}
            for dependency in sorted(set(dependencies)):
                # Its newest `lookback` actions by the index (dependency, id), as `events` reads them.
                row = db.execute(
                    f"SELECT {_EVENT_COLUMNS} FROM (SELECT {_EVENT_COLUMNS} FROM events WHERE dependency = ?"
                    " AND kind IN ('rollback', 'failback') ORDER BY id DESC LIMIT ?)"
                    " WHERE outcome != 'error' ORDER BY id DESC LIMIT 1",
                    (dependency, lookback),
                ).fetchone()
                if row is not None:
                    last[dependency] = _event_from_row(row)
            for start in range(0, len(prints), _IN_CHUNK):
                chunk = prints[start : start + _IN_CHUNK]
                for fingerprint, count in db.execute(
                    f"SELECT fingerprint, count(*) FROM alert_queue WHERE fingerprint IN ({','.join('?' * len(chunk))})"
                    " AND received_ts >= ? GROUP BY fingerprint",
                    (*chunk, _ts(since)),
                ):
                    transitions[fingerprint] = int(count)
        return PassState(primaries=primaries, last_actions=last, transitions=transitions, shifts=shifts)

    def prune_queue(self, before: datetime) -> int:
        with self._write() as db:
            cursor = db.execute("DELETE FROM alert_queue WHERE state = 'done' AND received_ts < ?", (_ts(before),))
            return cursor.rowcount

    # --- zonal shifts and overrides (sqlite_runtime; IMMEDIATE transactions make check-then-write safe) --
    def start_zonal_shift(
        self, shift: ZonalShift, *, max_active: int | None = None, event: ShiftEvent | None = None
    ) -> ZonalShift:
        with self._write() as db:
            stored = runtime.start_shift(db, shift, max_active=max_active, url=self.url)
            if event is not None:
                self._insert_event(db, event(stored))
            return stored

    def zonal_shifts(self, active_at: datetime | None = None) -> list[ZonalShift]:
        with self._read() as db:
            return runtime.shifts(db, active_at)

    def end_zonal_shift(
        self, zone: str, *, ended_ts: datetime, end_reason: str, event: ShiftEvent | None = None
    ) -> ZonalShift | None:
        with self._write() as db:
            ended = runtime.end_shift(db, zone, ended_ts=ended_ts, end_reason=end_reason)
            if ended is not None and event is not None:
                self._insert_event(db, event(ended))
            return ended

    def set_override(self, override: Override, *, event: OverrideEvent | None = None) -> Override:
        with self._write() as db:
            stored = runtime.set_override(db, override)
            if event is not None:
                self._insert_event(db, event(stored))
            return stored

    def overrides(self, active_at: datetime | None = None) -> list[Override]:
        with self._read() as db:
            return runtime.overrides(db, active_at)

    def end_override(
        self, dependency: str, *, ended_ts: datetime, end_reason: str, event: OverrideEvent | None = None
    ) -> Override | None:
        with self._write() as db:
            ended = runtime.end_override(db, dependency, ended_ts=ended_ts, end_reason=end_reason)
            if ended is not None and event is not None:
                self._insert_event(db, event(ended))
            return ended

    # --- leases -----------------------------------------------------------------------------------
    def acquire_lease(self, dependency: str, holder: str, ttl_s: float) -> int | None:
        return self.acquire_leases([dependency], holder, ttl_s)[dependency]

    def acquire_leases(self, dependencies: Sequence[str], holder: str, ttl_s: float) -> dict[str, int | None]:
        names = sorted(set(dependencies))
        if not names:
            return {}
        now = time.time()
        tokens: dict[str, int | None] = {}
        with self._write() as db:
            for name in names:
                row = db.execute(
                    "INSERT INTO leases (dependency, holder, token, expires_ts) VALUES (?, ?, 1, ?)"
                    " ON CONFLICT (dependency) DO UPDATE SET"
                    " token = CASE WHEN leases.holder = excluded.holder AND leases.expires_ts >= ?"
                    " THEN leases.token ELSE leases.token + 1 END,"
                    " holder = excluded.holder, expires_ts = excluded.expires_ts"
                    " WHERE leases.expires_ts < ? OR leases.holder = excluded.holder"
                    " RETURNING token",
                    (name, holder, now + ttl_s, now, now),
                ).fetchone()
                tokens[name] = None if row is None else int(row[0])
        return tokens

    def lease_holds(self, dependency: str, holder: str, token: int) -> bool:
        with self._read() as db:
            row = db.execute(
                "SELECT 1 FROM leases WHERE dependency = ? AND holder = ? AND token = ? AND expires_ts >= ?",
                (dependency, holder, token, time.time()),
            ).fetchone()
        return row is not None

    def release_lease(self, dependency: str, holder: str, token: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE leases SET expires_ts = 0 WHERE dependency = ? AND holder = ? AND token = ?",
                (dependency, holder, token),
            )

    def abandoned_actions(self, holder: str) -> list[ActionRecord]:
        with self._read() as db:
            rows = db.execute(
                "SELECT a.* FROM actions a LEFT JOIN leases l ON l.dependency = a.dependency"
                " WHERE a.finished_ts IS NULL AND a.runner_id != ?"
                " AND (l.expires_ts IS NULL OR l.expires_ts < ? OR l.holder != a.runner_id)"
                " ORDER BY a.started_ts",
                (holder, time.time()),
            ).fetchall()
        return [_action_from_row(row) for row in rows]

    def stats(self) -> dict[str, Any]:
        with self._read() as db:
            counts = {name: int(db.execute(sql).fetchone()[0]) for name, sql in STATS_QUERIES}
            counts["leases_held"] = int(
                db.execute("SELECT count(*) FROM leases WHERE expires_ts >= ?", (time.time(),)).fetchone()[0]
            )
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
        return {"backend": "sqlite", "url": self.url, "schema": str(version), **counts}

    # --- lifecycle ---------------------------------------------------------------------------------
    def check(self) -> None:
        try:
            with self._read() as db:
                db.execute("SELECT 1 FROM events LIMIT 1").fetchall()
        except sqlite3.Error as error:
            raise explain(self.path, error, busy_timeout_s=self._busy_timeout_s) from error

    def check_writable(self) -> None:
        refuse_unwritable(self.path)
        # A connection of its own, so the answer never waits behind this store's lock; SQLite keeps this
        # process's locks on the file intact when it closes.
        try:
            probe = sqlite3.connect(_uri(self.path, create=False), uri=True, timeout=0, isolation_level=None)
        except sqlite3.Error as error:
            raise explain(self.path, error, busy_timeout_s=WRITABLE_CHECK_TIMEOUT_S) from error
        try:
            probe.execute(f"PRAGMA busy_timeout = {int(WRITABLE_CHECK_TIMEOUT_S * 1000)}")
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        except sqlite3.Error as error:
            raise explain(self.path, error, busy_timeout_s=WRITABLE_CHECK_TIMEOUT_S) from error
        finally:
            probe.close()

    def integrity_check(self) -> str:
        with self._read() as db:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _replace_id(event: Event, new_id: int | None) -> Event:
    return replace(event, id=new_id)


def _uri(path: Path, *, create: bool) -> str:
    # mode=rw: a file removed since refuse_unopenable looked is an error, not a new empty store.
    return f"file:{quote(str(path))}?mode={'rwc' if create else 'rw'}"
