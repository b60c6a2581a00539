"""The one duration parser (depmirror.durations)."""

from __future__ import annotations

import pytest

from depmirror.durations import parse_duration


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), (3, 3.0)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0s", "-1", True])
def test_bad_durations_are_refused(text: str | bool) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
