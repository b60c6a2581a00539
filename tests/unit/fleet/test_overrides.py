"""Overrides as the planner and the runner read them: precedence, expiry, bounds, and request checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.unit.graph_data import base_graph, build

from depmirror.fleet.overrides import OverrideError, apply_to_graph, effective, parse_request
from depmirror.store import Override

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def override(dependency: str = "payments", id: int = 1, hours: float = 1.0, **settings: object) -> Override:
    values = {"rf_min": None, "rf_max": None, "unhealthy": None, "rollback": None, **settings}
    return Override(
        dependency=dependency,
        reason="r",
        created_by="alice",
        created_ts=NOW - timedelta(hours=1),
        expires_ts=NOW + timedelta(hours=hours),
        id=id,
        **values,  # type: ignore[arg-type]
    )


def test_the_dependencys_own_override_wins_over_every_dependency_field_by_field() -> None:
    every = override("*", id=5, rollback="frozen", rf_min=2)
    own = override("payments", id=1, rollback="auto")
    settings = effective([every, own], "payments", NOW)
    assert settings["rollback"] == ("auto", own) and settings["rf_min"] == (2, every)
    assert effective([every, own], "sessions", NOW)["rollback"] == ("frozen", every)


def test_expired_and_ended_overrides_are_ignored() -> None:
    expired = override(hours=-0.5, rollback="frozen")
    ended = override(id=2, rollback="manual")
    ended = Override(
        **{
            **ended.as_dict(),
            "created_ts": ended.created_ts,
            "expires_ts": ended.expires_ts,
            "ended_ts": NOW - timedelta(minutes=1),
            "end_reason": "cleared",
        }
    )
    assert effective([expired, ended], "payments", NOW) == {}


def test_apply_to_graph_sets_rf_bounds_and_the_fleet_threshold() -> None:
    graph = build(base_graph())  # payments 1..3, sessions 1..3
    changed, notes = apply_to_graph(
        graph, [override(rf_min=3), override("sessions", id=2, rf_max=1), override("*", id=3, unhealthy=0.7)], NOW
    )
    assert (
        changed.dependencies["payments"].replication.min_rf,
        changed.dependencies["payments"].replication.max_rf,
    ) == (3, 3)
    assert (
        changed.dependencies["sessions"].replication.min_rf,
        changed.dependencies["sessions"].replication.max_rf,
    ) == (1, 1)
    assert changed.policy.health.unhealthy == 0.7
    assert (len(notes) == 3 and "override #1" in notes[0]) or any("override #1" in n for n in notes)
    assert graph.dependencies["payments"].replication.min_rf == 1, "the graph itself is not changed"


def test_a_raised_minimum_lifts_the_maximum_and_a_lowered_maximum_the_minimum() -> None:
    data = base_graph()
    data["dependencies"]["payments"]["replication"] = {"min": 2, "max": 3}
    graph = build(data)
    up, _ = apply_to_graph(graph, [override(rf_min=5)], NOW)
    assert (up.dependencies["payments"].replication.min_rf, up.dependencies["payments"].replication.max_rf) == (5, 5)
    down, _ = apply_to_graph(graph, [override(rf_max=1)], NOW)
    assert (down.dependencies["payments"].replication.min_rf, down.dependencies["payments"].replication.max_rf) == (
        1,
        1,
    )


def test_no_override_returns_the_same_graph() -> None:
    graph = build(base_graph())
    assert apply_to_graph(graph, [override(hours=-1, rf_min=3)], NOW) == (graph, [])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rf_min": 2, "expires_in": "720h", "reason": "r"}, None),
        ({"rf_min": 2, "expires_in": "721h", "reason": "r"}, "expires_in"),
        ({"rf_min": 2, "expires_in": 3600, "reason": "r"}, "expires_in"),
        ({"rf_min": 2, "expires_in": "0s", "reason": "r"}, "expires_in"),
        ({"rf_min": 2.5, "expires_in": "1h", "reason": "r"}, "rf_min"),
        ({"rf_max": 65, "expires_in": "1h", "reason": "r"}, "rf_max"),
        ({"unhealthy": float("inf"), "expires_in": "1h", "reason": "r"}, "unhealthy"),
        ({"rollback": "auto", "expires_in": "1h", "reason": "a\nb"}, "reason"),
        ({"rollback": "auto", "expires_in": "1h", "reason": "x" * 501}, "reason"),
    ],
)
def test_parse_request(body: dict[str, object], field: str | None) -> None:
    if field is None:
        parsed = parse_request("payments", body, known={"payments"}, created_by="alice", now=NOW)
        assert parsed.expires_ts == NOW + timedelta(days=30) and parsed.rf_min == 2
        return
    with pytest.raises(OverrideError) as raised:
        parse_request("payments", body, known={"payments"}, created_by="alice", now=NOW)
    assert raised.value.field == field


def test_every_dependency_is_a_name_and_unknown_ones_are_refused() -> None:
    body = {"rollback": "frozen", "expires_in": "1h", "reason": "r"}
    assert parse_request("*", body, known=(), created_by="a", now=NOW).dependency == "*"
    with pytest.raises(OverrideError, match="dependency: 'ghost'"):
        parse_request("ghost", body, known={"payments"}, created_by="a", now=NOW)
