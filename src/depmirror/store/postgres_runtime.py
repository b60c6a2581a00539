"""The PostgreSQL store's zonal shifts and overrides, as sqlite_runtime: rows are ended, never deleted.

Starting a shift and setting an override read the open rows and then write: each takes an advisory
transaction lock first, so that two runners racing on one zone alert take turns and the second sees the
first's shift (the partial unique indexes stay as the last word)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import DictRow

from depmirror.store import postgres_rows as rows
from depmirror.store import runtime_checks as checks
from depmirror.store.model import Override, ZonalShift
from depmirror.store.postgres_connection import Cursor
from depmirror.store.postgres_schema import OVERRIDES_LOCK_KEY, SHIFTS_LOCK_KEY

SHIFT_COLUMNS = "id, zone, reason, created_by, started_ts, expires_ts, ended_ts, end_reason"
OVERRIDE_COLUMNS = (
    "id, dependency, rf_min, rf_max, unhealthy, rollback, reason, created_by, created_ts, expires_ts,"
    " ended_ts, end_reason"
)


def _maybe_utc(when: datetime | None) -> datetime | None:
    return None if when is None else rows.utc(when)


def shift_from_row(row: DictRow) -> ZonalShift:
    return ZonalShift(
        id=row["id"],
        zone=row["zone"],
        reason=row["reason"],
        created_by=row["created_by"],
        started_ts=rows.utc(row["started_ts"]),
        expires_ts=rows.utc(row["expires_ts"]),
        ended_ts=_maybe_utc(row["ended_ts"]),
        end_reason=row["end_reason"],
    )


def override_from_row(row: DictRow) -> Override:
    return Override(
        id=row["id"],
        dependency=row["dependency"],
        rf_min=row["rf_min"],
        rf_max=row["rf_max"],
        unhealthy=row["unhealthy"],
        rollback=row["rollback"],
        reason=row["reason"],
        created_by=row["created_by"],
        created_ts=rows.utc(row["created_ts"]),
        expires_ts=rows.utc(row["expires_ts"]),
        ended_ts=_maybe_utc(row["ended_ts"]),
        end_reason=row["end_reason"],
    )


def active_query(table: str, columns: str, start: str, active_at: datetime | None) -> tuple[str, tuple[Any, ...]]:
    """The SELECT for every row (None) or the rows active at `active_at`, by id."""
    if active_at is None:
        return f"SELECT {columns} FROM {table} ORDER BY id", ()
    checks.check_end(active_at, "-")
    return (
        f"SELECT {columns} FROM {table} WHERE {start} <= %s AND expires_ts > %s"
        " AND (ended_ts IS NULL OR ended_ts > %s) ORDER BY id",
        (active_at, active_at, active_at),
    )


def start_shift(cursor: Cursor, shift: ZonalShift, *, max_active: int | None, url: str) -> ZonalShift:
    checks.check_shift(shift)
    if shift.ended_ts is None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (SHIFTS_LOCK_KEY,))
        # An open shift of this zone that ran out before this one starts is over: end it at its expiry.
        cursor.execute(
            "UPDATE zonal_shifts SET ended_ts = expires_ts, end_reason = 'expired'"
            " WHERE zone = %s AND ended_ts IS NULL AND expires_ts <= %s",
            (rows.text(shift.zone), shift.started_ts),
        )
        sql, params = active_query("zonal_shifts", SHIFT_COLUMNS, "started_ts", shift.started_ts)
        active = [shift_from_row(row) for row in cursor.execute(sql, params).fetchall()]
        clash = [other for other in active if other.zone == rows.text(shift.zone)]
        if clash:
            raise checks.zone_already_shifted(url, clash[0])
        if max_active is not None and len(active) >= max_active:
            raise checks.too_many_shifts(url, shift.zone, active, max_active)
    row = cursor.execute(
        "INSERT INTO zonal_shifts (zone, reason, created_by, started_ts, expires_ts, ended_ts, end_reason)"
        f" VALUES (%s,%s,%s,%s,%s,%s,%s) RETURNING {SHIFT_COLUMNS}",
        (
            rows.text(shift.zone),
            rows.text(shift.reason),
            rows.text(shift.created_by),
            shift.started_ts,
            shift.expires_ts,
            shift.ended_ts,
            rows.maybe_text(shift.end_reason),
        ),
    ).fetchone()
    if row is None:
        raise RuntimeError("INSERT ... RETURNING gave no row")
    return shift_from_row(row)


def end_shift(cursor: Cursor, zone: str, *, ended_ts: datetime, end_reason: str) -> ZonalShift | None:
    checks.check_end(ended_ts, end_reason)
    row = cursor.execute(
        f"UPDATE zonal_shifts SET ended_ts = %s, end_reason = %s WHERE zone = %s AND ended_ts IS NULL"
        f" RETURNING {SHIFT_COLUMNS}",
        (ended_ts, rows.text(end_reason), rows.text(zone)),
    ).fetchone()
    return None if row is None else shift_from_row(row)


def set_override(cursor: Cursor, override: Override) -> Override:
    checks.check_override(override)
    if override.ended_ts is None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (OVERRIDES_LOCK_KEY,))
        cursor.execute(
            "UPDATE overrides SET ended_ts = CASE WHEN expires_ts <= %(t)s THEN expires_ts ELSE %(t)s END,"
            " end_reason = CASE WHEN expires_ts <= %(t)s THEN 'expired' ELSE 'replaced' END"
            " WHERE dependency = %(dependency)s AND ended_ts IS NULL",
            {"t": override.created_ts, "dependency": rows.text(override.dependency)},
        )
    row = cursor.execute(
        "INSERT INTO overrides (dependency, rf_min, rf_max, unhealthy, rollback, reason, created_by, created_ts,"
        f" expires_ts, ended_ts, end_reason) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING {OVERRIDE_COLUMNS}",
        (
            rows.text(override.dependency),
            override.rf_min,
            override.rf_max,
            None if override.unhealthy is None else float(override.unhealthy),
            rows.maybe_text(override.rollback),
            rows.text(override.reason),
            rows.text(override.created_by),
            override.created_ts,
            override.expires_ts,
            override.ended_ts,
            rows.maybe_text(override.end_reason),
        ),
    ).fetchone()
    if row is None:
        raise RuntimeError("INSERT ... RETURNING gave no row")
    return override_from_row(row)


def end_override(cursor: Cursor, dependency: str, *, ended_ts: datetime, end_reason: str) -> Override | None:
    checks.check_end(ended_ts, end_reason)
    row = cursor.execute(
        f"UPDATE overrides SET ended_ts = %s, end_reason = %s WHERE dependency = %s AND ended_ts IS NULL"
        f" RETURNING {OVERRIDE_COLUMNS}",
        (ended_ts, rows.text(end_reason), rows.text(dependency)),
    ).fetchone()
    return None if row is None else override_from_row(row)
