"""How long `ansible-inventory --list` takes with the depmirror.mirroring.graph plugin over a large fleet.

The fleet: 10k dependencies (about 27k instances) on 3,000 VMs in 3 zones and one load balancer, from the
same synthetic generator as bench/plan_scale.py (bench/_synthetic.py), with no cost budget so that
every dependency gets the RF it wants. The graph file and a `fleet.depmirror.yml` beside it are written
to a temporary directory; `ansible-inventory -i fleet.depmirror.yml --list > /dev/null` runs with the
checkout's ansible.cfg, best of 3 wall-clock runs (the CPU seconds of that run are recorded too).

The floor: the same hosts, groups and variables, already computed, served as JSON by an inventory script
(`ansible.builtin.script`), best of 3. That is what ansible-core itself spends on this much inventory
(taking in every variable, the per-host variables of --list, the JSON) and no plugin can go below it.

The breakdown is timed in this process, each step once in CPU seconds, to show where the time goes:
reading the YAML, validating it (JSON Schema and checks), planning, the plan as JSON, the inventory
document, and Ansible's own part (the CPU time of ansible-inventory minus the library's build_inventory).

Writes bench/results/inventory_scale.json: seconds_10k (the target: <= 10 s), ansible_floor_s and the
breakdown.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from ansible.release import __version__ as ANSIBLE_CORE

from depmirror.fleet.planning import build_inventory
from depmirror.gc_pause import paused_gc
from depmirror.graph.load import _load_yaml, parse_graph
from depmirror.planner.plan import compute_plan
from depmirror.views.inventory import inventory_document

sys.path.insert(0, str(Path(__file__).parent))
from _synthetic import best_of, machine, synthetic_graph

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "inventory_scale.json"
ANSIBLE_INVENTORY = ROOT / ".venv" / "bin" / "ansible-inventory"
DEPENDENCIES = 10_000
VMS = 3_000
LOAD_BALANCERS = 1  # as in the example fleet; each one carries every dependency in its hostvars
RUNS = 3


def write_fleet(directory: Path) -> Path:
    data = synthetic_graph(DEPENDENCIES, vms=VMS, load_balancers=LOAD_BALANCERS)
    del data["policy"]["cost_budget"]
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    graph = directory / "graph.yml"
    graph.write_text(yaml.dump(data, Dumper=dumper, sort_keys=False), encoding="utf-8")
    source = directory / "fleet.depmirror.yml"
    source.write_text("plugin: depmirror.mirroring.graph\ngraph: graph.yml\n", encoding="utf-8")
    return source


def write_floor(directory: Path, inventory: dict[str, Any]) -> Path:
    """The plugin's hosts, groups and vars as an inventory script's JSON, and the script that prints it."""
    listing: dict[str, Any] = {"_meta": {"hostvars": inventory["hosts"]}, "all": {"vars": inventory["all_vars"]}}
    for name, group in inventory["groups"].items():
        listing[name] = group
    data = directory / "floor.json"
    data.write_text(json.dumps(listing), encoding="utf-8")
    script = directory / "floor.sh"
    script.write_text(f"#!/bin/sh\nexec cat {data}\n", encoding="utf-8")
    script.chmod(0o755)
    return script


def ansible_inventory_list(source: Path, **env_extra: str) -> tuple[float, float]:
    """Wall and CPU seconds (the child's user + system) of one `ansible-inventory --list`."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", **env_extra}
    env.pop("DEPMIRROR_STORE", None)
    env.pop("DEPMIRROR_PROMETHEUS_URL", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        subprocess.run(
            [str(ANSIBLE_INVENTORY), "-i", str(source), "--list"],
            stdout=devnull,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
            check=True,
            timeout=600,
        )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def breakdown(source: Path) -> tuple[dict[str, float], dict[str, int], dict[str, Any]]:
    """CPU seconds of each step of build_inventory (steadier than wall time on a shared machine)."""
    graph_path = source.parent / "graph.yml"
    raw = graph_path.read_bytes()
    steps: dict[str, float] = {}
    # As in build_inventory: the collector paused while the fleet's objects are built (gc_pause.py).
    with paused_gc():
        _, steps["yaml_load_s"], data = best_of(1, lambda: _load_yaml(raw, str(graph_path)))
        _, steps["validate_s"], graph = best_of(1, lambda: parse_graph(data, str(graph_path)))
        _, steps["plan_s"], plan = best_of(1, lambda: compute_plan(graph, now=time.time()))
        _, steps["plan_to_dict_s"], document = best_of(1, plan.to_dict)
        _, steps["inventory_document_s"], inventory = best_of(1, lambda: inventory_document(graph, document))
    _, steps["build_inventory_s"], built = best_of(1, lambda: build_inventory(graph_path))
    counts = {
        "instances": sum(len(v.get("depmirror_instances", [])) for v in inventory["hosts"].values()),
        "groups": len(inventory["groups"]),
    }
    return {name: round(value, 3) for name, value in steps.items()}, counts, built


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="depmirror-inventory-scale-") as tmp:
        source = write_fleet(Path(tmp))
        graph_mb = (Path(tmp) / "graph.yml").stat().st_size / 1e6
        runs = [ansible_inventory_list(source) for _ in range(RUNS)]
        wall, cpu = min(runs)
        steps, counts, built = breakdown(source)
        floor_script = write_floor(Path(tmp), built)
        del built
        floor_runs = [
            ansible_inventory_list(floor_script, ANSIBLE_INVENTORY_ENABLED="ansible.builtin.script")
            for _ in range(RUNS)
        ]
        floor_wall, _ = min(floor_runs)
    # Ansible's own part: loading the plugin, InventoryData, reconcile, the --list JSON (a CPU estimate).
    steps["ansible_s"] = round(cpu - steps["build_inventory_s"], 3)
    print(
        f"ansible-inventory --list, {DEPENDENCIES} dependencies ({counts['instances']} instances, "
        f"{counts['groups']} groups) on {VMS} VMs ({graph_mb:.1f} MB of YAML): {wall:.2f} s "
        f"(cpu {cpu:.2f} s; runs {', '.join(f'{w:.2f}' for w, _ in runs)}; target <= 10 s)"
    )
    print("  cpu seconds: " + ", ".join(f"{name.removesuffix('_s')} {value:.2f}" for name, value in steps.items()))
    print(
        f"  floor (ansible-core {ANSIBLE_CORE} listing the same inventory from a script): "
        f"{floor_wall:.2f} s (runs {', '.join(f'{w:.2f}' for w, _ in floor_runs)})"
    )
    result: dict[str, Any] = {
        "seconds_10k": round(wall, 3),
        "cpu_seconds_10k": round(cpu, 3),
        "runs": [round(w, 3) for w, _ in runs],
        "ansible_floor_s": round(floor_wall, 3),
        "ansible_floor_runs": [round(w, 3) for w, _ in floor_runs],
        "ansible_core": ANSIBLE_CORE,
        "dependencies": DEPENDENCIES,
        "vms": VMS,
        "load_balancers": LOAD_BALANCERS,
        "graph_file_mb": round(graph_mb, 2),
        **counts,
        "breakdown_cpu_s": steps,
        "machine": machine(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
