"""A graph file that cannot hurt: each bad input is exit 2 and one line naming the file, field and fix.

Every case here got through before (issue 19): NaN read as the highest frequency or crashing the planner,
`port: 8080.0` reaching the command line, a VM named like a group corrupting the inventory, a write error
ending in a traceback.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.graph_data import base_graph

from depmirror.cli.main import main

ROOT = Path(__file__).resolve().parents[3]


def refused(tmp_path: Path, data: Any, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    path = tmp_path / "graph.yml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    assert main([*(args or ("plan",)), "--graph", str(path), "--now", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    assert err.startswith(f"depmirror: error: {path}: ") and "(fix: " in err
    return err


def edit(change: str, value: Any) -> dict[str, Any]:
    """base_graph() with the dotted field `change` set to `value` (intermediate mappings created)."""
    data = base_graph()
    *parents, last = change.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


NON_FINITE = [
    ("services.shop.depends_on.payments.rate", float("nan")),
    ("dependencies.payments.depends_on.sessions.rate", float("inf")),
    ("dependencies.payments.request_rate", float("nan")),
    ("dependencies.payments.cost", float("nan")),
    ("dependencies.payments.slo.latency_ms", float("inf")),
    ("dependencies.payments.entry", {"rate": float("nan")}),
    ("policy.cost_budget", float("nan")),
    ("policy.cost_budget", float("inf")),
    ("policy.replication.rf_scale", float("nan")),
    ("policy.replication.stabilisation_window", float("inf")),
    ("policy.mode.active_active_min_weight", float("nan")),
    ("policy.health.unhealthy", float("nan")),
    ("policy.weights", {"tier": float("nan"), "frequency": 0.2, "impact": 0.4}),
    ("policy.weights", {"reference_rate": float("inf")}),
]


@pytest.mark.parametrize(("field", "value"), NON_FINITE, ids=[f"{f}={v}" for f, v in NON_FINITE])
def test_nan_and_infinity_are_refused_in_every_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: Any
) -> None:
    err = refused(tmp_path, edit(field, value), capsys)
    assert "is not a finite number" in err or "is out of range" in err
    named = field if not isinstance(value, dict) else f"{field}.{next(iter(value))}"
    assert f": {named}: " in err


INTEGERS = [
    ("dependencies.payments.port", 8081.0),
    ("dependencies.payments.tier", 1.0),
    ("vms.vm-a1.capacity", 4.0),
    ("dependencies.payments.replication.min", 2.0),
    ("dependencies.payments.health", {"samples": 3.0}),
    ("policy.replication.scale_down_step", 1.0),
    ("policy.routing.max_fails", 2.0),
    ("services.shop.tier", 0.0),
]


@pytest.mark.parametrize(("field", "value"), INTEGERS, ids=[f for f, _ in INTEGERS])
def test_integer_fields_refuse_floats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: Any
) -> None:
    err = refused(tmp_path, edit(field, value), capsys)
    assert "expected an integer, got" in err and "without the decimal point" in err


def test_port_8080_0_never_reaches_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(tmp_path, edit("dependencies.payments.port", 8080.0), capsys)
    assert "dependencies.payments.port: expected an integer, got 8080.0 (fix: write 8080 without" in err


CLASHES = [
    ("vms", "primaries", "host name 'primaries' is also an inventory group"),
    ("vms", "all", "host name 'all' is also an inventory group"),
    ("vms", "zone_zone_a", "host name 'zone_zone_a' is also an inventory group (zone 'zone-a')"),
    ("vms", "dep_payments", "host name 'dep_payments' is also an inventory group (dependency 'payments')"),
    ("load_balancers", "mirrors", "host name 'mirrors' is also an inventory group"),
]


@pytest.mark.parametrize(("section", "host", "message"), CLASHES, ids=[h for _, h, _ in CLASHES])
def test_a_host_named_like_an_inventory_group_is_refused_by_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, host: str, message: str
) -> None:
    data = base_graph()
    data[section][host] = {"address": "198.18.0.99", "zone": "zone-a"}
    err = refused(tmp_path, data, capsys)
    assert f"{section}.{host}: {message}" in err


def test_zones_or_dependencies_sharing_a_group_are_refused_by_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = base_graph()
    data["zones"]["zone_a"] = {}
    data["vms"]["vm-x"] = {"address": "198.18.0.99", "zone": "zone_a"}
    err = refused(tmp_path, data, capsys)
    assert "zones.zone_a: its inventory group zone_zone_a is also the group of zone 'zone-a'" in err
    data = base_graph()
    data["dependencies"]["payments-primary"] = {**data["dependencies"]["reports"], "port": 9555}
    err = refused(tmp_path, data, capsys)
    assert "dependencies.payments-primary: its inventory group dep_payments_primary" in err


def test_a_recursive_alias_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(tmp_path, "zones: &z {zone-a: *z}\n", capsys)
    assert "an alias refers to the node that contains it" in err


def test_an_oversized_file_is_refused_before_it_is_parsed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(tmp_path, "# " + "x" * (16 * 1024 * 1024) + "\n", capsys)
    assert "larger than 16 MiB" in err


def alias_bomb() -> str:
    """A 'billion laughs' in a typed field: 9 levels of 9 aliases, 9^9 strings once expanded (~800 bytes)."""
    levels = ['      - &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"      - &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    head = ["zones: {zone-a: {}}", "vms: {vm-a1: {address: 198.18.0.11, zone: zone-a}}", "dependencies:"]
    head += ["  d:", "    kind: http", "    port: 8080", "    deploy: {command: x}", "    tier:"]
    return "\n".join(head + levels) + "\n"


def test_the_alias_bomb_is_refused_without_expanding_it(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(alias_bomb(), encoding="utf-8")
    assert 600 < path.stat().st_size < 900
    # In a child of its own, so its peak memory is measured alone (it took 3.1 GB and 44 s before).
    probe = (
        "import resource, subprocess, sys\n"
        f"done = subprocess.run([sys.executable, '-m', 'depmirror.cli', 'plan', '--graph', {str(path)!r}],"
        " capture_output=True, text=True, timeout=60)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(done.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=90)
    rc, peak_kb = (int(x) for x in done.stdout.split())
    assert rc == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert "aliases expand the document to 490,329,081 nodes" in done.stderr
    assert peak_kb < 200 * 1024
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 4 * 1024 * 1024  # and never inside the test


def test_a_graph_written_where_it_cannot_be_is_one_line(tmp_path: Path) -> None:
    example = ROOT / "inventories" / "example" / "graph.yml"
    target = tmp_path / "missing" / "dir" / "x.svg"
    done = subprocess.run(
        [sys.executable, "-m", "depmirror.cli", "graph", "--graph", str(example), "-o", str(target)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert (
        done.returncode == 2 and done.stderr == f"depmirror: error: cannot write {target}: No such file or directory\n"
    )


def test_the_json_plan_never_holds_nan_or_infinity(capsys: pytest.CaptureFixture[str]) -> None:
    example = ROOT / "inventories" / "example" / "graph.yml"
    assert main(["plan", "--graph", str(example), "--format", "json", "--now", "0"]) == 0
    json.loads(capsys.readouterr().out, parse_constant=lambda name: pytest.fail(f"{name} in the plan JSON"))


def test_a_closed_pipe_is_not_a_traceback() -> None:
    example = ROOT / "inventories" / "example" / "graph.yml"
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte (`depmirror plan | head`, at its worst)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "depmirror.cli", "plan", "--graph", str(example), "--format", "json", "--now", "0"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 0 and done.stderr == ""


def test_a_full_disk_on_standard_output_is_one_line() -> None:
    example = ROOT / "inventories" / "example" / "graph.yml"
    shell = f"{sys.executable} -m depmirror.cli plan --graph {example} --now 0 > /dev/full"
    done = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "depmirror: error: cannot write to standard output: No space left on device\n"


def test_numbers_too_large_for_a_float_or_python_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = yaml.safe_dump(base_graph())
    err = refused(tmp_path, text.replace("rate: 100\n", "rate: 1" + "0" * 400 + "\n", 1), capsys)
    assert "dependencies.payments.depends_on.sessions.rate: the number is too large" in err
    err = refused(tmp_path, text.replace("rate: 100\n", "rate: 1" + "0" * 5000 + "\n", 1), capsys)
    assert "not valid YAML: the number has too many digits (5,001)" in err and len(err) < 300
    err = refused(tmp_path, text.replace("capacity: 4\n", "capacity: 99999999999\n", 1), capsys)
    assert "vms.vm-a1.capacity: the integer is too large" in err
