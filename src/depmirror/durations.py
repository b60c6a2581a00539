"""Durations as people and Prometheus write them (`500ms`, `5s`, `1m`, `2h`, `7d`): the one parser every
config, filter and CLI flag uses."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_seconds(text: str) -> float | None:
    """Seconds in a duration string, or None when `text` is not one (a caller may try another form)."""
    match = _DURATION.match(text.strip())
    return None if match is None else float(match.group(1)) * _UNITS[match.group(2)]


def parse_duration(value: str | float | int) -> float:
    """Seconds from a number or a duration ('500ms', '5s', '1m', '2h', '7d'); positive, or ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        parsed = duration_seconds(value)
        if parsed is None:
            raise ValueError(f"{value!r} is not a duration such as 500ms, 5s or 1m")
        seconds = parsed
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return seconds
