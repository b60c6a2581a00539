"""The runner's fast path renders nginx releases in Python; they must be the files the role writes.

If they differed, every adjust.yml after a fast switchover would swap nginx again, and the release names
would not say what they hold.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from tests.integration.ansible_run import ROOT, playbook

from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan
from depmirror.rollback.nginx import NginxOptions, render_release

TEMPLATES = ROOT / "roles" / "nginx_upstream" / "templates"


@pytest.mark.parametrize("directives", [[], ["proxy_buffering off"]])
def test_the_fast_path_renders_byte_for_byte_what_the_role_renders(tmp_path: Path, directives: list[str]) -> None:
    graph = load_graph(ROOT / "inventories" / "example" / "graph.yml")
    dependencies = compute_plan(graph, None, None, 0.0).to_dict()["dependencies"]
    by_name = {d["name"]: d for d in dependencies}
    by_name["catalog-api"]["instances"][1]["health"] = 0.7  # a mirror at reduced weight
    by_name["payments-api"]["instances"][-1]["health"] = 0.1  # a failing mirror, left out
    routing = dataclasses.asdict(graph.policy.routing)
    variables = {
        "nginx_upstream_dependencies": dependencies,
        "nginx_upstream_routing": routing,
        "nginx_upstream_unhealthy_below": 0.5,
        "nginx_upstream_listen_address": "198.18.0.2",
        "nginx_upstream_location_directives": directives,
        "templates": str(TEMPLATES),
        "out_dir": str(tmp_path),
    }
    run = playbook(
        "tests/integration/playbooks/render_release.yml",
        [],
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        json.dumps(variables),
    )
    assert run.rc == 0, run.messages() or run.stderr

    ours = render_release(
        TEMPLATES, dependencies, routing, 0.5, "198.18.0.2", NginxOptions(location_directives=tuple(directives))
    )
    assert ours.release == (tmp_path / "release").read_text()
    assert ours.content == (tmp_path / "nginx.conf").read_text()
    for name, text in ours.files.items():
        assert text == (tmp_path / name).read_text(), name


def test_given_no_dependencies_the_role_routes_the_current_plan(tmp_path: Path) -> None:
    """Without a plan passed in, the role asks depmirror.mirroring.plan: never an empty nginx config."""
    graph_file = ROOT / "inventories" / "example" / "graph.yml"
    source = tmp_path / "fleet.depmirror.yml"
    source.write_text(f"plugin: depmirror.mirroring.graph\ngraph: {graph_file}\n")
    variables = {"templates": str(TEMPLATES), "out_dir": str(tmp_path), "nginx_upstream_listen_address": "198.18.0.2"}
    env = {"DEPMIRROR_STORE": "", "DEPMIRROR_PROMETHEUS_URL": ""}
    run = playbook(
        "tests/integration/playbooks/render_release.yml", [source], "-c", "local", "-e", json.dumps(variables), env=env
    )
    assert run.rc == 0, run.messages() or run.stderr

    dependencies = compute_plan(load_graph(graph_file), None, None, 0.0).to_dict()["dependencies"]
    ours = render_release(TEMPLATES, dependencies, {}, 0.5, "198.18.0.2", NginxOptions())
    assert ours.release == (tmp_path / "release").read_text()
    for name, text in ours.files.items():
        assert text == (tmp_path / name).read_text(), name


def test_given_no_dependencies_and_no_graph_the_role_stops_before_rendering(tmp_path: Path) -> None:
    variables = {"templates": str(TEMPLATES), "out_dir": str(tmp_path)}
    run = playbook(
        "tests/integration/playbooks/render_release.yml",
        [],
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        json.dumps(variables),
    )
    assert run.rc != 0
    assert "nginx_upstream_dependencies is not set" in run.messages()
    assert not (tmp_path / "release").exists()
