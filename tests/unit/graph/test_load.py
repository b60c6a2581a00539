"""Loading the graph file: the example loads, and every kind of bad input names file, field and fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.graph_data import base_graph

from depmirror.errors import ConfigError
from depmirror.graph.load import load_graph

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "example" / "graph.yml"


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "graph.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_the_example_graph_loads_with_three_zones_two_vms_each_and_lb1() -> None:
    graph = load_graph(EXAMPLE)
    assert sorted(graph.zones) == ["zone-a", "zone-b", "zone-c"]
    per_zone = {z: sorted(v.host for v in graph.vms.values() if v.zone == z) for z in graph.zones}
    assert all(len(hosts) >= 2 for hosts in per_zone.values())
    assert graph.vms["vm-a1"].address == "198.18.0.11"
    assert graph.vms["vm-c2"].address == "198.18.0.32"
    assert graph.load_balancers["lb1"].address == "198.18.0.2"
    assert {d.kind for d in graph.dependencies.values()} == {"http", "tcp", "redis"}
    assert "{port}" not in graph.dependencies["catalog-api"].deploy.rendered_command(8081)
    assert "8081" in graph.dependencies["catalog-api"].deploy.rendered_command(8081)


def test_defaults_apply_where_the_file_is_silent(tmp_path: Path) -> None:
    graph = load_graph(write(tmp_path, base_graph()))
    dep = graph.dependencies["sessions"]
    assert dep.replication.mode == "auto"
    assert dep.cost == 1.0
    assert graph.policy.cost_budget is None
    assert graph.policy.replication.stabilisation_window == 600


def mutate(path: str, value: Any) -> Any:
    """Set a dotted path in the base graph (creating mappings); value None with path ending '!' deletes."""

    def apply(data: dict[str, Any]) -> None:
        parts = path.rstrip("!").split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if path.endswith("!"):
            del node[parts[-1]]
        else:
            node[parts[-1]] = value

    return apply


BAD_INPUTS = [
    (
        "unknown dependency in an edge",
        mutate("services.shop.depends_on.paymnts", {"rate": 1}),
        "services.shop.depends_on.paymnts",
        "unknown dependency 'paymnts'",
        "payments",
    ),
    (
        "edge to a service",
        mutate("dependencies.reports.depends_on.shop", {"rate": 1}),
        "dependencies.reports.depends_on.shop",
        "is a service",
        "move it under dependencies",
    ),
    (
        "a name used twice",
        mutate("services.payments", {"tier": 1}),
        "services.payments",
        "duplicate name",
        "list it once",
    ),
    (
        "negative rate",
        mutate("services.shop.depends_on.payments.rate", -5),
        "services.shop.depends_on.payments.rate",
        "out of range",
        ">= 0",
    ),
    (
        "negative request rate",
        mutate("dependencies.payments.request_rate", -1),
        "dependencies.payments.request_rate",
        "out of range",
        ">= 0",
    ),
    (
        "min RF above max RF",
        mutate("dependencies.payments.replication", {"min": 3, "max": 2}),
        "dependencies.payments.replication.min",
        "greater than max RF",
        "min <= max",
    ),
    ("zone without VMs", mutate("zones.zone-d", {}), "zones.zone-d", "zone has no VMs", "zone: zone-d"),
    ("VM in an unknown zone", mutate("vms.vm-a1.zone", "zone-x"), "vms.vm-a1.zone", "unknown zone", "zone-a"),
    (
        "min RF needs more VMs than exist",
        mutate("dependencies.payments.replication", {"min": 7, "max": 7}),
        "dependencies.payments.replication.min",
        "never two instances of a dependency on one VM",
        "add VMs",
    ),
    (
        "tier out of range",
        mutate("dependencies.payments.tier", 5),
        "dependencies.payments.tier",
        "out of range",
        "integer >= 0 and <= 3",
    ),
    (
        "unknown kind",
        mutate("dependencies.payments.kind", "grpc"),
        "dependencies.payments.kind",
        "'grpc' is not allowed",
        "one of: http, tcp, redis",
    ),
    (
        "misspelt field",
        mutate("dependencies.payments.teir", 1),
        "dependencies.payments.teir",
        "unknown field",
        "allowed here:",
    ),
    (
        "missing port",
        mutate("dependencies.payments.port!", None),
        "dependencies.payments.port",
        "is missing",
        "add `port`",
    ),
    (
        "bad name",
        mutate("dependencies.Pay Ments", {"tier": 1, "kind": "redis", "port": 7000}),
        "dependencies.Pay Ments",
        "invalid name",
        "lowercase letters",
    ),
    (
        "stateful kind active-active",
        mutate("dependencies.sessions.replication.mode", "active-active"),
        "dependencies.sessions.replication.mode",
        "stateful",
        "active-passive",
    ),
    (
        "two dependencies on one port",
        mutate("dependencies.reports.port", 8081),
        "dependencies.reports.port",
        "already used by dependency 'payments'",
        "its own port",
    ),
    (
        "no command for http",
        mutate("dependencies.payments.deploy!", None),
        "dependencies.payments.deploy.command",
        "needs a command",
        "deploy:",
    ),
    (
        "weights not adding up",
        mutate("policy.weights", {"tier": 0.5, "frequency": 0.5, "impact": 0.5}),
        "policy.weights",
        "= 1.5",
        "add up to 1",
    ),
    (
        "bad address",
        mutate("vms.vm-a1.address", "not an address!"),
        "vms.vm-a1.address",
        "not an IP",
        "198.18",
    ),
    (
        "two hosts on one address",
        mutate("vms.vm-a2.address", "198.18.0.11"),
        "vms.vm-a2.address",
        "also used by vm-a1",
        "own address",
    ),
    (
        "pool too small for the min RFs",
        lambda data: [
            mutate(
                "vms",
                {
                    f"vm-{z}1": {"address": f"10.0.0.{i}", "zone": f"zone-{z}", "capacity": 1}
                    for i, z in enumerate("abc")
                },
            )(data),
            mutate("dependencies.payments.replication.min", 2)(data),
        ],
        "vms",
        "VM capacity",
        "raise VM capacity",
    ),
]


@pytest.mark.parametrize(("label", "change", "field", "problem", "fix"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_names_file_field_and_fix(
    tmp_path: Path, label: str, change: Any, field: str, problem: str, fix: str
) -> None:
    data = base_graph()
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_graph(path)
    error = caught.value
    assert error.file == str(path), label
    assert error.field == field
    assert problem in error.problem
    assert fix in error.fix
    assert str(path) in str(error) and field in str(error)


def test_duplicate_key_in_yaml_is_reported_with_both_lines(tmp_path: Path) -> None:
    text = yaml.safe_dump(base_graph(), sort_keys=False)
    text += "dependencies:\n  payments: {tier: 1, kind: http, port: 1}\n"
    path = tmp_path / "graph.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_graph(path)
    assert "duplicate name 'dependencies'" in caught.value.problem
    assert caught.value.field.startswith("line ")


def test_duplicate_dependency_name_is_caught_before_yaml_drops_one(tmp_path: Path) -> None:
    path = tmp_path / "graph.yml"
    path.write_text(
        "zones: {zone-a: {}}\nvms: {vm-a1: {address: 10.0.0.1, zone: zone-a}}\n"
        "dependencies:\n"
        "  cache: {tier: 1, kind: redis, port: 6380}\n"
        "  cache: {tier: 2, kind: redis, port: 6381}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_graph(path)
    assert caught.value.field == "line 5"
    assert "duplicate name 'cache' (first defined at line 4)" in caught.value.problem


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "graph.yml"
    path.write_text("zones: {zone-a: {}\nvms: [\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_graph(path)
    assert "not valid YAML" in caught.value.problem
    assert caught.value.field.startswith("line ")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the graph file"):
        load_graph(tmp_path / "absent.yml")


def test_a_health_section_carries_custom_queries_and_is_checked(tmp_path: Path) -> None:
    data = base_graph()
    name = next(iter(data["dependencies"]))
    data["dependencies"][name]["health"] = {"up": 'up{job="$dependency"}', "samples": 2}
    graph = load_graph(write(tmp_path, data))
    assert graph.dependencies[name].health is not None
    assert graph.dependencies[name].health.up == 'up{job="$dependency"}'
    assert graph.dependencies[name].health.samples == 2

    data["dependencies"][name]["health"] = {"samples": 2, "p99": "x"}
    with pytest.raises(ConfigError) as error:
        load_graph(write(tmp_path, data))
    assert error.value.field == f"dependencies.{name}.health.p99"
