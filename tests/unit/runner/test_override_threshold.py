"""The runner's health re-check takes an `unhealthy` override in force (the dependency's own, else `*`'s) as
its threshold for that dependency only (runner/policy.py `use_threshold`, health/checker.py)."""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.unit.graph_data import base_graph, build

from depmirror.health.checker import UNHEALTHY_BELOW, with_threshold
from depmirror.runner import policy
from depmirror.runner.api.book import OverrideBook
from depmirror.store import Override

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def override(dependency: str, unhealthy: float, *, hours: float = 1.0, id: int = 1) -> Override:
    return Override(
        dependency,
        None,
        None,
        unhealthy,
        None,
        "r",
        "alice",
        NOW - timedelta(hours=1),
        NOW + timedelta(hours=hours),
        id=id,
    )


def book(*overrides: Override) -> OverrideBook:
    found = OverrideBook(db=None, runner_id="r1")  # type: ignore[arg-type]  # settings() reads only `active`
    found.active = overrides
    return found


def threshold_after(found: OverrideBook | None, dependency: str) -> Any:
    def run() -> Any:
        policy.use_threshold(found, dependency, NOW)
        return UNHEALTHY_BELOW.get()

    return contextvars.copy_context().run(run)


def test_own_then_every_dependency_then_none() -> None:
    overrides = book(override("payments", 0.3), override("*", 0.6, id=2), override("reports", 0.1, hours=-0.5, id=3))
    assert threshold_after(overrides, "payments") == ("payments", 0.3)
    assert threshold_after(overrides, "sessions") == ("sessions", 0.6)
    assert threshold_after(book(override("reports", 0.1, hours=-0.5)), "reports") is None, "expired"
    assert threshold_after(None, "payments") is None


def test_the_graph_the_checker_judges_with() -> None:
    graph = build(base_graph())
    moved = with_threshold(graph, "payments", ("payments", 0.2))
    assert moved.unhealthy_below("payments") == 0.2 and moved.unhealthy_below("sessions") == 0.5
    assert with_threshold(graph, "sessions", ("payments", 0.2)) is graph, "set for another dependency"
    assert with_threshold(graph, "payments", None) is graph
