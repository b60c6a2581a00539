"""The SQLite store's zonal shifts and overrides: rows are ended, never deleted. Each function runs inside
the caller's IMMEDIATE transaction, so a check and the write after it see no other writer in between."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from depmirror.store import runtime_checks as checks
from depmirror.store.model import Override, ZonalShift

_SHIFT_COLUMNS = "id, zone, reason, created_by, started_ts, expires_ts, ended_ts, end_reason"
_OVERRIDE_COLUMNS = (
    "id, dependency, rf_min, rf_max, unhealthy, rollback, reason, created_by, created_ts, expires_ts,"
    " ended_ts, end_reason"
)


def _ts(when: datetime) -> float:
    return when.timestamp()


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _shift(row: sqlite3.Row) -> ZonalShift:
    return ZonalShift(
        id=row["id"],
        zone=row["zone"],
        reason=row["reason"],
        created_by=row["created_by"],
        started_ts=datetime.fromtimestamp(row["started_ts"], UTC),
        expires_ts=datetime.fromtimestamp(row["expires_ts"], UTC),
        ended_ts=_dt(row["ended_ts"]),
        end_reason=row["end_reason"],
    )


def _override(row: sqlite3.Row) -> Override:
    return Override(
        id=row["id"],
        dependency=row["dependency"],
        rf_min=row["rf_min"],
        rf_max=row["rf_max"],
        unhealthy=row["unhealthy"],
        rollback=row["rollback"],
        reason=row["reason"],
        created_by=row["created_by"],
        created_ts=datetime.fromtimestamp(row["created_ts"], UTC),
        expires_ts=datetime.fromtimestamp(row["expires_ts"], UTC),
        ended_ts=_dt(row["ended_ts"]),
        end_reason=row["end_reason"],
    )


def _active_where(alias: str, start: str) -> str:
    return f"{alias}.{start} <= :t AND {alias}.expires_ts > :t AND ({alias}.ended_ts IS NULL OR {alias}.ended_ts > :t)"


def shifts(db: sqlite3.Connection, active_at: datetime | None) -> list[ZonalShift]:
    if active_at is None:
        found = db.execute(f"SELECT {_SHIFT_COLUMNS} FROM zonal_shifts s ORDER BY id").fetchall()
    else:
        checks.check_end(active_at, "-")
        found = db.execute(
            f"SELECT {_SHIFT_COLUMNS} FROM zonal_shifts s WHERE {_active_where('s', 'started_ts')} ORDER BY id",
            {"t": _ts(active_at)},
        ).fetchall()
    return [_shift(row) for row in found]


def start_shift(db: sqlite3.Connection, shift: ZonalShift, *, max_active: int | None, url: str) -> ZonalShift:
    checks.check_shift(shift)
    if shift.ended_ts is None:
        # An open shift of this zone that ran out before this one starts is over: end it at its expiry.
        db.execute(
            "UPDATE zonal_shifts SET ended_ts = expires_ts, end_reason = 'expired'"
            " WHERE zone = ? AND ended_ts IS NULL AND expires_ts <= ?",
            (shift.zone, _ts(shift.started_ts)),
        )
        active = shifts(db, shift.started_ts)
        clash = [other for other in active if other.zone == shift.zone]
        if clash:
            raise checks.zone_already_shifted(url, clash[0])
        if max_active is not None and len(active) >= max_active:
            raise checks.too_many_shifts(url, shift.zone, active, max_active)
    cursor = db.execute(
        "INSERT INTO zonal_shifts (zone, reason, created_by, started_ts, expires_ts, ended_ts, end_reason)"
        " VALUES (?,?,?,?,?,?,?)",
        (
            shift.zone,
            shift.reason,
            shift.created_by,
            _ts(shift.started_ts),
            _ts(shift.expires_ts),
            None if shift.ended_ts is None else _ts(shift.ended_ts),
            shift.end_reason,
        ),
    )
    row = db.execute(f"SELECT {_SHIFT_COLUMNS} FROM zonal_shifts WHERE id = ?", (cursor.lastrowid,)).fetchone()
    return _shift(row)


def end_shift(db: sqlite3.Connection, zone: str, *, ended_ts: datetime, end_reason: str) -> ZonalShift | None:
    checks.check_end(ended_ts, end_reason)
    row = db.execute(
        f"UPDATE zonal_shifts SET ended_ts = ?, end_reason = ? WHERE zone = ? AND ended_ts IS NULL"
        f" RETURNING {_SHIFT_COLUMNS}",
        (_ts(ended_ts), end_reason, zone),
    ).fetchone()
    return None if row is None else _shift(row)


def overrides(db: sqlite3.Connection, active_at: datetime | None) -> list[Override]:
    if active_at is None:
        found = db.execute(f"SELECT {_OVERRIDE_COLUMNS} FROM overrides o ORDER BY id").fetchall()
    else:
        checks.check_end(active_at, "-")
        found = db.execute(
            f"SELECT {_OVERRIDE_COLUMNS} FROM overrides o WHERE {_active_where('o', 'created_ts')} ORDER BY id",
            {"t": _ts(active_at)},
        ).fetchall()
    return [_override(row) for row in found]


def set_override(db: sqlite3.Connection, override: Override) -> Override:
    checks.check_override(override)
    if override.ended_ts is None:
        created = _ts(override.created_ts)
        db.execute(
            "UPDATE overrides SET ended_ts = CASE WHEN expires_ts <= ? THEN expires_ts ELSE ? END,"
            " end_reason = CASE WHEN expires_ts <= ? THEN 'expired' ELSE 'replaced' END"
            " WHERE dependency = ? AND ended_ts IS NULL",
            (created, created, created, override.dependency),
        )
    cursor = db.execute(
        "INSERT INTO overrides (dependency, rf_min, rf_max, unhealthy, rollback, reason, created_by, created_ts,"
        " expires_ts, ended_ts, end_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            override.dependency,
            override.rf_min,
            override.rf_max,
            None if override.unhealthy is None else float(override.unhealthy),
            override.rollback,
            override.reason,
            override.created_by,
            _ts(override.created_ts),
            _ts(override.expires_ts),
            None if override.ended_ts is None else _ts(override.ended_ts),
            override.end_reason,
        ),
    )
    row = db.execute(f"SELECT {_OVERRIDE_COLUMNS} FROM overrides WHERE id = ?", (cursor.lastrowid,)).fetchone()
    return _override(row)


def end_override(db: sqlite3.Connection, dependency: str, *, ended_ts: datetime, end_reason: str) -> Override | None:
    checks.check_end(ended_ts, end_reason)
    row = db.execute(
        f"UPDATE overrides SET ended_ts = ?, end_reason = ? WHERE dependency = ? AND ended_ts IS NULL"
        f" RETURNING {_OVERRIDE_COLUMNS}",
        (_ts(ended_ts), end_reason, dependency),
    ).fetchone()
    return None if row is None else _override(row)
