"""What both backends check before they store a zonal shift or an override (programming errors: ValueError).

The doors (CLI, API, runner) check user input first and say it in their own words; these checks keep a
bad value from reaching the store whoever the caller is."""

from __future__ import annotations

from datetime import datetime

from depmirror.store.base import StoreConflict
from depmirror.store.model import ROLLBACK_MODES, Override, ZonalShift

# Longer than any door allows (a shift 72 h, an override 30 days): a record is text a person reads.
MAX_TEXT = 4096


def _aware(name: str, when: datetime | None) -> None:
    if when is not None and when.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC)")


def _text(name: str, value: str, *, empty: bool = False) -> None:
    if not isinstance(value, str) or (not empty and not value):
        raise ValueError(f"{name} must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise ValueError(f"{name} is longer than {MAX_TEXT} characters")


def check_shift(shift: ZonalShift) -> None:
    _text("zone", shift.zone)
    _text("reason", shift.reason)
    _text("created_by", shift.created_by)
    for name in ("started_ts", "expires_ts", "ended_ts"):
        _aware(name, getattr(shift, name))
    if shift.expires_ts <= shift.started_ts:
        raise ValueError("expires_ts must be after started_ts")
    if (shift.ended_ts is None) != (shift.end_reason is None):
        raise ValueError("ended_ts and end_reason go together")


def check_end(ended_ts: datetime, end_reason: str) -> None:
    _aware("ended_ts", ended_ts)
    _text("end_reason", end_reason)


def check_override(override: Override) -> None:
    _text("dependency", override.dependency)
    _text("reason", override.reason)
    _text("created_by", override.created_by)
    for name in ("created_ts", "expires_ts", "ended_ts"):
        _aware(name, getattr(override, name))
    if override.expires_ts <= override.created_ts:
        raise ValueError("expires_ts must be after created_ts")
    if (override.ended_ts is None) != (override.end_reason is None):
        raise ValueError("ended_ts and end_reason go together")
    if override.rollback is not None and override.rollback not in ROLLBACK_MODES:
        raise ValueError(f"rollback must be one of {', '.join(ROLLBACK_MODES)}, not {override.rollback!r}")
    for name in ("rf_min", "rf_max"):
        value = getattr(override, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a whole number of at least 1")
    if override.rf_min is not None and override.rf_max is not None and override.rf_min > override.rf_max:
        raise ValueError("rf_min must not exceed rf_max")
    unhealthy = override.unhealthy
    if unhealthy is not None and (isinstance(unhealthy, bool) or not 0.0 <= float(unhealthy) <= 1.0):
        raise ValueError("unhealthy must be a health score between 0 and 1")


def zone_already_shifted(url: str, existing: ZonalShift) -> StoreConflict:
    return StoreConflict(
        url,
        f"zone {existing.zone!r} is already shifted (shift {existing.id} by {existing.created_by},"
        f" until {existing.expires_ts.isoformat()}: {existing.reason})",
        "end that shift first, or let it run: one shift per zone",
        existing=existing,
    )


def too_many_shifts(url: str, zone: str, active: list[ZonalShift], max_active: int) -> StoreConflict:
    zones = ", ".join(sorted(shift.zone for shift in active))
    return StoreConflict(
        url,
        f"cannot shift zone {zone!r}: {len(active)} zone(s) already shifted ({zones}), at most {max_active} at a time",
        "end a shift first, or raise policy.zonal_shift.max_concurrent in the graph",
        existing=active[0] if active else None,
    )
