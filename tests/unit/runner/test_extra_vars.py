"""The extra vars file the runner writes for a playbook: every string in ansible-core's unsafe form, types
kept, and no alert text as a mapping key."""

from __future__ import annotations

import json

import pytest

from depmirror.runner.extra_vars import UNSAFE_KEY, render_extra_vars


def test_every_string_is_marked_unsafe_and_keeps_its_type() -> None:
    rendered = json.loads(
        render_extra_vars(
            {
                "depmirror_trigger": {"fingerprint": "0x1F", "starts_at": "2026-11-29T08:47:10.123456789Z"},
                "depmirror_candidates": ("vm-b1", "null"),
                "count": 3,
                "flag": True,
                "nothing": None,
            }
        )
    )
    assert rendered["depmirror_trigger"]["fingerprint"] == {UNSAFE_KEY: "0x1F"}
    assert rendered["depmirror_trigger"]["starts_at"] == {UNSAFE_KEY: "2026-11-29T08:47:10.123456789Z"}
    assert rendered["depmirror_candidates"] == [{UNSAFE_KEY: "vm-b1"}, {UNSAFE_KEY: "null"}]
    assert (rendered["count"], rendered["flag"], rendered["nothing"]) == (3, True, None)


@pytest.mark.parametrize("key", ["{{ lookup('pipe', 'id') }}", "{% set x = 1 %}", "a{#b"])
def test_a_key_with_template_marks_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="keys must be the runner's own"):
        render_extra_vars({"depmirror_trigger": {key: "value"}})
