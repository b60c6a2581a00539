"""The inventory plugin through `ansible-inventory`, as a user (or AWX's inventory sync) runs it.

Golden files: `<name>.depmirror.yml` beside `<name>.expected.json`. After an intended change, regenerate
them with `UPDATE_GOLDEN=1 pytest tests/integration/test_inventory_plugin.py` and review the diff.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent / "inventory"
GOLDEN = sorted(HERE.glob("*.depmirror.yml"))


def ansible_inventory(source: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return ansible_cli("ansible-inventory", "-i", str(source), *args, env=env)


def ansible_cli(tool: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / tool), *args]
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=120, check=False)


def plain(value: Any) -> Any:
    """ansible-core 2.19 marks inventory strings unsafe in --list output; compare their values."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def listed(source: Path, **kwargs: Any) -> dict[str, Any]:
    result = ansible_inventory(source, "--list", **kwargs)
    assert result.returncode == 0, result.stderr
    return plain(json.loads(result.stdout))


@pytest.mark.parametrize("source", GOLDEN, ids=[p.name.removesuffix(".depmirror.yml") for p in GOLDEN])
def test_golden(source: Path) -> None:
    expected_file = source.with_name(source.name.replace(".depmirror.yml", ".expected.json"))
    got = listed(source)
    got["_meta"]["hostvars"] = {h: v for h, v in got["_meta"]["hostvars"].items()}
    text = json.dumps(got, indent=2, sort_keys=True) + "\n"
    text = text.replace(str(ROOT), "$ROOT")
    if os.environ.get("UPDATE_GOLDEN"):
        expected_file.write_text(text)
    assert expected_file.exists(), f"no golden file {expected_file.name}: run with UPDATE_GOLDEN=1 once"
    assert text == expected_file.read_text()


def test_groups_and_hostvars_a_playbook_relies_on() -> None:
    inventory = listed(HERE / "small.depmirror.yml")
    hostvars = inventory["_meta"]["hostvars"]
    assert sorted(inventory["depmirror_vms"]["hosts"]) == ["vm-e1", "vm-e2", "vm-w1"]
    assert inventory["depmirror_load_balancers"]["hosts"] == ["lb1"]
    assert sorted(inventory["zone_east"]["hosts"]) == ["lb1", "vm-e1", "vm-e2"]
    # every instance shows up on its VM, in its dependency's group and in its role's group
    roles = {"primary": "primaries", "mirror": "mirrors", "standby": "standbys"}
    for host, hv in hostvars.items():
        for instance in hv.get("depmirror_instances", []):
            group = "dep_" + instance["dependency"].replace("-", "_")
            in_group = inventory[group].get("hosts", []) + inventory.get(f"{group}_primary", {}).get("hosts", [])
            assert host in in_group
            assert host in inventory[roles[instance["role"]]]["hosts"]
            assert 0 <= instance["weight"] <= 1 and instance["replication_factor"] >= 1
    cart_api = [
        i for hv in hostvars.values() for i in hv.get("depmirror_instances", []) if i["dependency"] == "cart-api"
    ]
    assert len(cart_api) >= 2, "min RF 2 must give two instances"
    assert {hostvars[h]["depmirror_zone"] for h in list_hosts("dep_cart_api")} == {"east", "west"}
    # nginx's routing policy reaches the load balancers, and only them
    assert hostvars["lb1"]["depmirror_routing"]["max_fails"] >= 1
    assert "depmirror_routing" not in hostvars["vm-e1"]


def list_hosts(pattern: str) -> list[str]:
    """The hosts a play with `hosts: PATTERN` (or AWX's Limit) would run on."""
    result = ansible_cli("ansible", pattern, "--list-hosts", "-i", str(HERE / "small.depmirror.yml"))
    assert result.returncode == 0, result.stderr
    return sorted(result.stdout.split()[2:])  # after "hosts (N):"


def test_one_dependencys_primary_and_its_other_instances_are_patterns() -> None:
    """`dep_<name>_primary`, and `dep_<name>:!dep_<name>_primary` for its mirrors or standbys.

    Not `dep_<name>:&primaries`: a VM that mirrors this dependency may be the primary of another.
    """
    hostvars = listed(HERE / "small.depmirror.yml")["_meta"]["hostvars"]
    by_role: dict[str, list[str]] = {"primary": [], "other": []}
    for host, hv in hostvars.items():
        for instance in hv.get("depmirror_instances", []):
            if instance["dependency"] == "cart-api":
                by_role["primary" if instance["role"] == "primary" else "other"].append(host)
    assert len(by_role["primary"]) == 1 and by_role["other"], by_role
    assert list_hosts("dep_cart_api_primary") == by_role["primary"]
    assert list_hosts("dep_cart_api:!dep_cart_api_primary") == sorted(by_role["other"])
    assert list_hosts("dep_cart_api") == sorted(by_role["primary"] + by_role["other"])


def test_constructed_options_add_groups_and_vars() -> None:
    inventory = listed(HERE / "constructed.depmirror.yml")
    hostvars = inventory["_meta"]["hostvars"]
    assert sorted(inventory["az_west"]["hosts"]) == ["vm-w1"]
    for host in inventory["busy"]["hosts"]:
        assert hostvars[host]["depmirror_instance_count"] >= 2
    assert hostvars["vm-w1"]["depmirror_instance_count"] == len(hostvars["vm-w1"]["depmirror_instances"])


def test_a_broken_graph_fails_with_the_file_field_and_fix(tmp_path: Path) -> None:
    graph = (HERE / "small.graph.yml").read_text()
    graph = graph.replace("replication: {min: 2, max: 2}", "replication: {min: 3, max: 2}")
    (tmp_path / "g.yml").write_text(graph)
    source = tmp_path / "fleet.depmirror.yml"
    source.write_text("plugin: depmirror.mirroring.graph\ngraph: g.yml\n")
    result = ansible_inventory(source, "--list")
    assert result.returncode != 0
    assert f"{tmp_path}/g.yml" in result.stderr
    assert "dependencies.cart-cache.replication" in result.stderr
    assert "Traceback" not in result.stderr


def test_dependencies_whose_groups_would_clash_are_refused(tmp_path: Path) -> None:
    graph = yaml.safe_load((HERE / "small.graph.yml").read_text())
    graph["dependencies"]["cart-api-primary"] = {**graph["dependencies"]["audit"], "port": 9555}
    (tmp_path / "g.yml").write_text(yaml.safe_dump(graph))
    source = tmp_path / "fleet.depmirror.yml"
    source.write_text("plugin: depmirror.mirroring.graph\ngraph: g.yml\n")
    result = ansible_inventory(source, "--list")
    assert result.returncode != 0
    assert "dependencies.cart-api-primary" in result.stderr
    assert "dep_cart_api_primary" in result.stderr and "rename one of the two" in result.stderr
    assert "Traceback" not in result.stderr


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


LOUD_FAILURES = {
    # name: (the source's options, what the message names)
    "unreadable graph": ("graph: missing.yml\n", "graph: depmirror could not build the inventory"),
    "corrupt store": ("graph: g.yml\nstate_store: corrupt.db\n", "state_store: depmirror could not read the state"),
    "unreachable store": (
        "graph: g.yml\nstate_store: postgresql://depmirror:{password}@127.0.0.1:{port}/depmirror\n",
        "state_store: depmirror could not read the state",
    ),
}


@pytest.mark.parametrize("case", LOUD_FAILURES)
@pytest.mark.parametrize("tool", ["ansible-inventory", "ansible-playbook"])
def test_a_source_that_cannot_be_built_fails_the_run_whatever_ansible_cfg_says(
    tmp_path: Path, case: str, tool: str
) -> None:
    """ansible-core only warns about a failed source unless any_unparsed_is_failed is set; ours fails anyway."""
    lenient = tmp_path / "ansible.cfg"
    lenient.write_text("[inventory]\nany_unparsed_is_failed = False\nunparsed_is_failed = False\n")
    shutil.copy(HERE / "small.graph.yml", tmp_path / "g.yml")
    (tmp_path / "corrupt.db").write_text("not a database\n")
    options, named = LOUD_FAILURES[case]
    source = tmp_path / "fleet.depmirror.yml"
    source.write_text("plugin: depmirror.mirroring.graph\n" + options.format(password="s3cret", port=_closed_port()))
    env = {"ANSIBLE_CONFIG": str(lenient), "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".ansible" / "collections")}
    if tool == "ansible-inventory":
        result = ansible_inventory(source, "--graph", env=env)
    else:
        playbook = tmp_path / "site.yml"
        playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks: []\n")
        result = ansible_cli("ansible-playbook", "-i", str(source), str(playbook), env=env)
    assert result.returncode != 0, result.stdout + result.stderr
    assert f"{source}: {named}" in result.stderr
    assert "Completely failed to parse inventory source" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr


def test_the_cache_serves_the_last_inventory_until_flushed(tmp_path: Path) -> None:
    shutil.copy(HERE / "small.graph.yml", tmp_path / "g.yml")
    source = tmp_path / "cached.depmirror.yml"
    source.write_text(
        "plugin: depmirror.mirroring.graph\ngraph: g.yml\ncache: true\n"
        f"cache_plugin: ansible.builtin.jsonfile\ncache_connection: {tmp_path / 'cache'}\ncache_timeout: 3600\n"
    )
    first = listed(source)
    graph = (tmp_path / "g.yml").read_text().replace("  audit:\n    tier: 3", "  audit2:\n    tier: 3")
    (tmp_path / "g.yml").write_text(graph)
    assert listed(source) == first, "a cached inventory must not re-read the graph"
    flushed = ansible_inventory(source, "--list", "--flush-cache")
    assert flushed.returncode == 0, flushed.stderr
    assert "dep_audit2" in json.loads(flushed.stdout)
