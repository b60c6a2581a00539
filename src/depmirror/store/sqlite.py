"""The SQLite store: WAL, synchronous=FULL (every commit is fsynced), a busy timeout for other writers."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from depmirror.store.base import Store, StoreError
from depmirror.store.model import (
    EVENT_KINDS,
    ActionRecord,
    EnqueueResult,
    Event,
    EventFilter,
    QueuedAlert,
    RFDecision,
)
from depmirror.store.sqlite_schema import SCHEMA, SCHEMA_VERSION

# Long enough to ride out another process's fsync-heavy burst, short enough that a wedged writer shows.
DEFAULT_BUSY_TIMEOUT_S = 30.0

# Connections of one process to one file take turns here rather than in SQLite's busy handler, which
# sleeps in steps of up to 100 ms: the runner's webhook and worker share a file and the 202 must stay fast.
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(key, threading.Lock())


_EVENT_COLUMNS = (
    "id, ts, kind, dependency, instance, target, action, decision, reason, outcome, duration_s, "
    "trigger, inputs, details"
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

    def __init__(
        self, path: str | Path, *, create: bool = True, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
    ):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path.resolve()}"
        if not create and not self.path.exists():
            raise StoreError(f"{self.path}: no store here")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file_lock = _file_lock(self.path)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL (journal_mode is {mode})")
            # FULL: the WAL is fsynced at every commit, so a returned append survives power loss.
            self._db.execute("PRAGMA synchronous = FULL")
            # One IMMEDIATE transaction: processes opening a new file at once must not race on the DDL.
            with self._lock:
                self._db.executescript(
                    f"BEGIN IMMEDIATE;\n{SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
                )
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: {error}") from error

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

    def record_rf_decision(self, decision: RFDecision) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO rf_decisions (dependency, rf, ts) VALUES (?,?,?)",
                (decision.dependency, decision.rf, _ts(decision.time)),
            )

    def rf_decisions(self, dependency: str | None = None, since: datetime | None = None) -> list[RFDecision]:
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
        return [RFDecision(dependency=r[0], rf=r[1], time=_dt(r[2])) for r in rows]

    # --- queue -------------------------------------------------------------------------------------
    def enqueue(self, alerts: Sequence[QueuedAlert]) -> EnqueueResult:
        queued = 0
        with self._write() as db:
            for alert in alerts:
                not_before = alert.not_before or alert.received_at
                cursor = db.execute(
                    "INSERT OR IGNORE INTO alert_queue (fingerprint, starts_at, status, dependency, instance,"
                    " labels, annotations, group_key, received_ts, not_before_ts)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
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
                    ),
                )
                queued += cursor.rowcount
        return EnqueueResult(queued=queued, duplicates=len(alerts) - queued)

    def pending(self, now: datetime, limit: int = 1000) -> list[QueuedAlert]:
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alert_queue WHERE state = 'pending' AND not_before_ts <= ?"
                " ORDER BY id LIMIT ?",
                (_ts(now), limit),
            ).fetchall()
        return [_alert_from_row(row) for row in rows]

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

    def recover_interrupted(self, runner_id: str, now: datetime) -> list[tuple[ActionRecord, Event]]:
        recovered: list[tuple[ActionRecord, Event]] = []
        with self._write() as db:
            rows = db.execute(
                "SELECT * FROM actions WHERE runner_id = ? AND finished_ts IS NULL ORDER BY started_ts",
                (runner_id,),
            ).fetchall()
            for row in rows:
                record = ActionRecord(
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
                        details={"action_id": record.action_id, "external_id": record.external_id},
                    ),
                )
                db.execute(
                    "UPDATE actions SET finished_ts = ? WHERE action_id = ?", (_ts(now), record.action_id)
                )
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

    def prune_queue(self, before: datetime) -> int:
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM alert_queue WHERE state = 'done' AND received_ts < ?", (_ts(before),)
            )
            return cursor.rowcount

    # --- lifecycle ---------------------------------------------------------------------------------
    def check(self) -> None:
        try:
            with self._read() as db:
                db.execute("SELECT 1 FROM events LIMIT 1").fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"{self.path}: {error}") from error

    def integrity_check(self) -> str:
        with self._read() as db:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _replace_id(event: Event, new_id: int | None) -> Event:
    return replace(event, id=new_id)
