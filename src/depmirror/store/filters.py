"""Reading the history the same way everywhere (CLI and HTTP API): --since and friends."""

from __future__ import annotations

from datetime import datetime, timedelta

from depmirror.durations import duration_seconds
from depmirror.store.model import EVENT_KINDS, EventFilter

MAX_LIMIT = 10_000


class FilterError(ValueError):
    """A filter value a user typed is not valid; str(error) says which and what is allowed."""


def parse_since(text: str, now: datetime) -> datetime:
    """`30m`, `2h`, `7d` (ago) or an ISO 8601 time with a time zone."""
    seconds = duration_seconds(text)
    if seconds is not None:
        return now - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise FilterError(f"since: {text!r} is neither a duration (30m, 2h, 7d) nor an ISO 8601 time") from error
    if when.tzinfo is None:
        raise FilterError(f"since: {text!r} has no time zone (add Z or +00:00)")
    return when


def build_filter(
    now: datetime,
    dependency: str | None = None,
    kinds: list[str] | None = None,
    since: str | None = None,
    limit: int | None = 100,
) -> EventFilter:
    for kind in kinds or []:
        if kind not in EVENT_KINDS:
            raise FilterError(f"kind: {kind!r} is not one of {', '.join(EVENT_KINDS)}")
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise FilterError(f"limit: must be 1..{MAX_LIMIT}, got {limit}")
    return EventFilter(
        dependency=dependency or None,
        kinds=tuple(kinds or ()),
        since=parse_since(since, now) if since else None,
        limit=limit,
    )
