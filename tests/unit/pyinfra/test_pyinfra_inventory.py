"""The inventory plugin's document as a pyinfra inventory: same hosts, groups and data."""

from __future__ import annotations

from pathlib import Path

from depmirror.fleet.planning import build_inventory as plugin_document
from depmirror.frontends.pyinfra.inventory import Connection, build_inventory, flattened_groups
from depmirror.rollback.remote import SshOptions

GRAPH = Path(__file__).resolve().parents[3] / "inventories" / "example" / "graph.yml"


def test_every_host_group_and_variable_of_the_inventory_plugin_is_there() -> None:
    document = plugin_document(GRAPH)
    inventory = build_inventory(document, Connection(SshOptions(key_file="/k", known_hosts="/kh")))
    assert {h.name for h in inventory} == set(document["hosts"])
    for name, spec in document["groups"].items():
        members = {h.name for h in inventory.get_group(name)}
        assert set(spec["hosts"]) <= members, name
    vm = inventory.get_host("vm-a1")
    for key, value in document["hosts"]["vm-a1"].items():
        assert vm.data.get(key) == value, key
    assert vm.data.get("depmirror_graph_file") == str(GRAPH)
    lb = inventory.get_host("lb1")
    routing = document["groups"]["depmirror_load_balancers"]["vars"]["depmirror_routing"]
    assert lb.data.get("depmirror_routing") == routing
    assert lb.data.get("ssh_hostname") == document["hosts"]["lb1"]["ansible_host"]
    assert lb.data.get("ssh_key") == "/k" and lb.data.get("ssh_known_hosts_file") == "/kh"
    assert lb.data.get("ssh_strict_host_key_checking") == "yes"


def test_a_dependency_group_holds_its_primary_as_ansible_s_nested_group_does() -> None:
    document = plugin_document(GRAPH)
    flat = flattened_groups(document)
    name = next(g for g in document["groups"] if g.startswith("dep_") and not g.endswith("_primary"))
    primary = document["groups"][f"{name}_primary"]["hosts"]
    assert set(primary) <= set(flat[name])
    assert len(flat[name]) == len(set(flat[name]))


def test_a_phase_inventory_holds_only_its_hosts_and_no_empty_group() -> None:
    document = plugin_document(GRAPH)
    inventory = build_inventory(document, Connection(SshOptions()), only={"lb1"})
    assert [h.name for h in inventory] == ["lb1"]
    assert inventory.get_group("depmirror_load_balancers")
    assert "depmirror_vms" not in inventory.groups


def test_a_group_cycle_in_a_document_does_not_loop() -> None:
    groups = {"a": {"hosts": ["h"], "children": ["b"]}, "b": {"hosts": [], "children": ["a"]}}
    document = {"hosts": {}, "groups": groups}
    assert flattened_groups(document) == {"a": ["h"], "b": ["h"]}
