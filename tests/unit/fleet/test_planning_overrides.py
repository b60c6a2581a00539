"""The overrides in force reach every door that plans (the `plan` action, the inventory plugin, `depmirror
plan|explain|graph`), checked against `--now` where the CLI takes one; a dependency's own `unhealthy`
threshold judges its instances."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.unit.graph_data import base_graph, build

from depmirror.cli.main import main
from depmirror.fleet.applied import record_applied_plan
from depmirror.fleet.overrides import apply_to_graph
from depmirror.fleet.planning import build_inventory, plan_for_playbook
from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan
from depmirror.planner.state import HealthSnapshot
from depmirror.store import Override, open_store

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "example" / "graph.yml"
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def override(dependency: str = "payments-api", *, hours: float = 1.0, **settings: object) -> Override:
    values = {"rf_min": None, "rf_max": None, "unhealthy": None, "rollback": None, **settings}
    return Override(
        dependency=dependency,
        reason="sale week",
        created_by="alice",
        created_ts=T0,
        expires_ts=T0 + timedelta(hours=hours),
        **values,  # type: ignore[arg-type]
    )


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = str(tmp_path / "state.db")
    record_applied_plan(url, compute_plan(load_graph(EXAMPLE), now=T0.timestamp() - 3600).to_dict())
    return url


def _payments(document: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in document["dependencies"] if d["name"] == "payments-api")


def test_the_plan_action_and_the_inventory_plan_from_the_overridden_graph(store_url: str) -> None:
    now = datetime.now(UTC)
    with open_store(store_url) as store:
        store.set_override(
            Override(
                "payments-api",
                3,
                None,
                None,
                None,
                "sale",
                "alice",
                now - timedelta(minutes=1),
                now + timedelta(hours=1),
            )
        )
        store.set_override(
            Override(
                "*", None, None, 0.7, None, "strict", "alice", now - timedelta(minutes=1), now + timedelta(hours=1)
            )
        )
    document, warnings = plan_for_playbook(EXAMPLE, store=store_url)
    assert _payments(document)["rf"]["min"] == 3
    assert _payments(document)["replication_factor"] == 3
    assert any(w.startswith("payments-api: replication 2..3 -> 3..3 (override #") for w in warnings)
    inventory = build_inventory(EXAMPLE, store=store_url)
    assert inventory["all_vars"]["depmirror_unhealthy_below"] == 0.7, "the `*` threshold reaches the upstreams"


def _cli_plan(store_url: str, now: datetime, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert (
        main(["plan", "--graph", str(EXAMPLE), "--store", store_url, "--now", str(now.timestamp()), "--format", "json"])
        == 0
    )
    return _payments(json.loads(capsys.readouterr().out))


def test_the_cli_checks_overrides_against_now_not_the_wall_clock(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_store(store_url) as store:
        store.set_override(override(rf_min=3, hours=1.0))
    assert _cli_plan(store_url, T0 + timedelta(minutes=30), capsys)["rf"]["min"] == 3
    assert _cli_plan(store_url, T0 + timedelta(hours=2), capsys)["rf"]["min"] == 2, "expired at --now"
    assert _cli_plan(store_url, T0 - timedelta(minutes=5), capsys)["rf"]["min"] == 2, "not yet set at --now"
    at = str((T0 + timedelta(minutes=30)).timestamp())
    assert main(["explain", "payments-api", "--graph", str(EXAMPLE), "--store", store_url, "--now", at]) == 0
    assert "(min 3, max 3)" in capsys.readouterr().out
    assert main(["graph", "--graph", str(EXAMPLE), "--store", store_url, "--now", at]) == 0
    dot = capsys.readouterr().out
    payments_node = next(line for line in dot.splitlines() if '"payments-api" [' in line or "payments-api [" in line)
    assert "RF 3" in payments_node, payments_node


def test_a_dependencys_own_unhealthy_threshold_judges_its_instances() -> None:
    graph = build(base_graph())
    running = compute_plan(graph, now=0.0)
    # payments' primary runs on vm-a1, a standby of sessions on vm-a2; both instances score 0.45.
    health = HealthSnapshot(instances={"payments@vm-a1": 0.45, "sessions@vm-a2": 0.45})
    strict = compute_plan(graph, running.next_state, health, now=1.0)
    primary = strict.dependency("payments").instances[0]
    assert primary.host == "vm-a1" and "instance is unhealthy (0.45 < 0.5)" in primary.reason
    assert primary.counts is False, "kept as the primary, not counted towards RF"
    tolerant_graph, notes = apply_to_graph(graph, [override("payments", unhealthy=0.4)], T0)
    assert notes == ["payments: unhealthy below 0.5 -> 0.4 (override #None)"]
    assert tolerant_graph.unhealthy_below("payments") == 0.4 and tolerant_graph.unhealthy_below("sessions") == 0.5
    tolerant = compute_plan(tolerant_graph, running.next_state, health, now=1.0)
    primary = tolerant.dependency("payments").instances[0]
    assert (primary.host, primary.counts, primary.reason) == ("vm-a1", True, "already runs here")
    # The other dependency keeps the fleet's threshold: its standby at 0.45 is still replaced.
    sessions = tolerant.dependency("sessions")
    assert "vm-a2" not in {i.host for i in sessions.instances}
    assert any(a.host == "vm-a2" and a.action == "decommission" for a in sessions.actions)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e300", "soon", "{{ 7 * 7 }}"])
def test_a_bad_now_is_one_error_naming_the_flag(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["plan", "--graph", str(EXAMPLE), f"--now={value}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --now:" in err and "Traceback" not in err
