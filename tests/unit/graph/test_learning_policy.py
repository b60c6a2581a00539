"""`policy.learning` in the graph file: absent is off, present is on, and bad values are one error naming
the field (never a traceback, never a policy that silently does something else)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.graph_data import base_graph, build

from depmirror.errors import ConfigError
from depmirror.graph.model import LearningPolicy


def with_learning(learning: Any) -> dict[str, Any]:
    data = base_graph()
    data["policy"] = {"learning": learning}
    return data


def test_absent_is_off_present_is_on_and_enabled_false_turns_it_off() -> None:
    assert build(base_graph()).policy.learning == LearningPolicy()
    assert build(with_learning({})).policy.learning.enabled is True
    learned = build(with_learning({"enabled": False, "window": "7d", "max_raise": 1})).policy.learning
    assert (learned.enabled, learned.window_s, learned.max_raise) == (False, 7 * 86400.0, 1)


@pytest.mark.parametrize(
    ("learning", "field"),
    [
        ({"failovers": float("nan")}, "policy.learning.failovers"),
        ({"placement_penalty": float("inf")}, "policy.learning.placement_penalty"),
        ({"max_raise": 2.0}, "policy.learning.max_raise"),
        ({"window": "0d"}, "policy.learning.window"),
        ({"half_life": "3 days"}, "policy.learning.half_life"),
        ({"placement_penalty": 2}, "policy.learning.placement_penalty"),
        ({"failovers": 0}, "policy.learning.failovers"),
        ({"rf_step": 0}, "policy.learning.rf_step"),
        ({"enabled": "yes"}, "policy.learning.enabled"),
        ({"{{ lookup('pipe', 'id') }}": 1}, "policy.learning.{{ lookup('pipe', 'id') }}"),
        (5, "policy.learning"),
    ],
)
def test_bad_values_name_the_field(learning: Any, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        build(with_learning(learning))
    assert error.value.field == field, str(error.value)
