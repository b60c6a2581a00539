from __future__ import annotations

from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan
from depmirror.views.host_instances import decommissions_for_host, instances_for_host

EXAMPLE = "inventories/example/graph.yml"


def _plan() -> dict:
    return compute_plan(load_graph(EXAMPLE), now=0.0).to_dict()


def test_every_planned_instance_lands_on_exactly_one_host_with_its_deploy_spec() -> None:
    plan = _plan()
    hosts = [vm["host"] for vm in plan["vms"]]
    deployed = [(i["dependency"], host) for host in hosts for i in instances_for_host(plan, host)]
    planned = [(d["name"], i["host"]) for d in plan["dependencies"] for i in d["instances"]]
    assert sorted(deployed) == sorted(planned)
    for host in hosts:
        for item in instances_for_host(plan, host):
            if item["kind"] in ("http", "tcp"):
                assert str(item["port"]) in item["command"]


def test_primaries_come_first_and_replicas_know_their_primary() -> None:
    plan = _plan()
    for vm in plan["vms"]:
        items = instances_for_host(plan, vm["host"])
        roles = [i["role"] == "primary" for i in items]
        assert roles == sorted(roles, reverse=True)
        for item in items:
            if item["kind"] == "redis" and item["role"] != "primary":
                assert item["primary_address"].startswith("198.18.0.")
                assert item["primary_port"] == item["port"]


def test_decommissions_come_from_the_plans_actions() -> None:
    plan = _plan()
    plan["removed"] = [
        {
            "dependency": "old-api",
            "action": "decommission",
            "host": "vm-a1",
            "role": "mirror",
            "reason": "old-api left the graph",
        }
    ]
    assert decommissions_for_host(plan, "vm-a1") == [
        {"dependency": "old-api", "kind": "tcp", "port": 0, "role": "mirror", "reason": "old-api left the graph"}
    ]
    assert decommissions_for_host(plan, "vm-b1") == []
