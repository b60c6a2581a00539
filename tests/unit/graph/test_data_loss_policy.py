"""`policy.replication.data_loss`: whether a PostgreSQL primary waits for a standby before acknowledging."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.graph_data import base_graph

from depmirror.errors import ConfigError
from depmirror.graph.load import parse_graph
from depmirror.planner.plan import compute_plan
from depmirror.views.host_instances import instances_for_host


def _with(value: Any) -> dict[str, Any]:
    data = base_graph()
    data.setdefault("policy", {}).setdefault("replication", {})["data_loss"] = value
    return data


def test_the_default_is_bounded_asynchronous_replication() -> None:
    assert parse_graph(base_graph(), "g.yml").policy.replication.data_loss == "bounded"


def test_none_asks_for_synchronous_replication() -> None:
    assert parse_graph(_with("none"), "g.yml").policy.replication.data_loss == "none"


@pytest.mark.parametrize("value", ["zero", "None", "", True, 0, None, ["none"], "{{ 'none' }}"])
def test_anything_else_is_refused_naming_the_field_and_the_choices(value: Any) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_graph(_with(value), "g.yml")
    text = str(raised.value)
    assert "policy.replication.data_loss" in text and "none" in text and "bounded" in text
    assert "\n" not in text


@pytest.mark.parametrize(("data_loss", "synchronous"), [("none", True), ("bounded", False)])
def test_the_mirror_role_gets_synchronous_replication_only_when_no_loss_is_allowed(
    data_loss: str, synchronous: bool
) -> None:
    data = _with(data_loss)
    data["dependencies"]["ledger"] = {"tier": 1, "kind": "postgresql", "port": 5433, "replication": {"min": 2}}
    data["services"]["shop"]["depends_on"]["ledger"] = {"rate": 50}
    plan = compute_plan(parse_graph(data, "g.yml")).to_dict()
    ledger = next(d for d in plan["dependencies"] if d["name"] == "ledger")
    assert ledger["synchronous"] is synchronous
    assert all("synchronous" not in d for d in plan["dependencies"] if d["kind"] != "postgresql")
    hosts = {i["host"] for i in ledger["instances"]}
    for host in hosts:
        items = [i for i in instances_for_host(plan, host) if i["dependency"] == "ledger"]
        assert [i["synchronous"] for i in items] == [synchronous]
