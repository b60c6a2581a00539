"""How long compute_plan takes on synthetic fleets of 1k and 10k dependencies.

Each graph: N dependencies with 5 incoming calls each (from services and from other dependencies),
3 zones, 600 VMs, a cost budget that cuts some mirrors. Timed: compute_plan from an empty state (every
instance placed) and again with the state it produced (the steady state, everything kept). Also shown,
not part of the target: validating the graph data (JSON Schema + checks) and Plan.to_dict().

Writes bench/results/plan_scale.json: seconds_1k, seconds_10k (compute_plan, empty state, best of 5
wall-clock runs; the CPU seconds of one run are recorded too, as other work on the machine inflates wall time)
and ratio (10k / 1k; linear scaling gives 10).
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from depmirror.graph_file import parse_graph
from depmirror.model import Graph
from depmirror.plan import compute_plan

VMS = 600
ZONES = ("zone-a", "zone-b", "zone-c")
EDGES_PER_DEPENDENCY = 5
T = TypeVar("T")
RESULTS = Path(__file__).parent / "results" / "plan_scale.json"


def synthetic_graph(dependencies: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    services = max(10, dependencies // 10)
    capacity = -(-dependencies * 3 * 2 // VMS)  # room for twice RF 3 everywhere
    data: dict[str, Any] = {
        "version": 1,
        "policy": {"cost_budget": dependencies * 3.6},
        "zones": {zone: {} for zone in ZONES},
        "vms": {
            f"vm-{i:04d}": {
                "address": f"10.{i // 250}.{i % 250}.1",
                "zone": ZONES[i % 3],
                "capacity": capacity,
            }
            for i in range(VMS)
        },
        "services": {f"svc-{i:05d}": {"tier": rng.randrange(4), "depends_on": {}} for i in range(services)},
        "dependencies": {},
    }
    kinds = ("http", "tcp", "redis")
    for i in range(dependencies):
        kind = kinds[i % 3]
        data["dependencies"][f"dep-{i:05d}"] = {
            "tier": rng.randrange(4),
            "kind": kind,
            "port": 10000 + i,
            "replication": {"min": 1 + (i % 2), "max": 3},
            "cost": 1 + (i % 3) * 0.5,
            "deploy": {} if kind == "redis" else {"command": "python3 -m http.server {port}"},
            "depends_on": {},
        }
    names = list(data["dependencies"])
    for i, name in enumerate(names):
        # Callers: mostly dependencies earlier in the list (a DAG), a few services, and now and then a
        # later dependency, which closes cycles the planner must condense.
        for _ in range(EDGES_PER_DEPENDENCY):
            roll = rng.random()
            if roll < 0.3 or i == 0:
                caller = data["services"][f"svc-{rng.randrange(services):05d}"]
            elif roll < 0.995:
                caller = data["dependencies"][names[rng.randrange(i)]]
            else:
                caller = data["dependencies"][names[rng.randrange(len(names))]]
            if caller is not data["dependencies"][name]:
                caller["depends_on"][name] = {"rate": round(rng.uniform(0.1, 500), 1)}
    return data


def best_of(runs: int, action: Callable[[], T]) -> tuple[float, T]:
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - began)
    return min(timings), result


def load(dependencies: int) -> tuple[float, Graph]:
    """Validate the synthetic data; only the Graph outlives this call, as in the CLI."""
    data = synthetic_graph(dependencies)
    return best_of(1, lambda: parse_graph(data, f"synthetic-{dependencies}"))


def measure(dependencies: int) -> dict[str, Any]:
    validate_s, graph = load(dependencies)
    plan_s, plan = best_of(5, lambda: compute_plan(graph, now=1000.0))
    cpu_began = time.process_time()
    compute_plan(graph, now=1000.0)
    cpu_s = time.process_time() - cpu_began
    steady_s, _ = best_of(3, lambda: compute_plan(graph, plan.next_state, now=2000.0))
    dict_s, document = best_of(1, plan.to_dict)
    instances = sum(len(d["instances"]) for d in document["dependencies"])
    return {
        "dependencies": dependencies,
        "edges": len(graph.edges()),
        "instances": instances,
        "cycles": len(document["cycles"]),
        "budget_cuts": len(document["budget"]["cut"]),
        "plan_s": round(plan_s, 4),
        "plan_cpu_s": round(cpu_s, 4),
        "steady_plan_s": round(steady_s, 4),
        "validate_s": round(validate_s, 4),
        "to_dict_s": round(dict_s, 4),
    }


def main() -> None:
    small, large = measure(1_000), measure(10_000)
    for row in (small, large):
        print(
            f"{row['dependencies']:>6} deps, {row['edges']} edges, {row['instances']} instances, "
            f"{row['cycles']} cycles, {row['budget_cuts']} budget cuts: plan {row['plan_s']:.3f} s "
            f"(cpu {row['plan_cpu_s']:.3f} s), "
            f"steady plan {row['steady_plan_s']:.3f} s (validate {row['validate_s']:.3f} s, "
            f"to_dict {row['to_dict_s']:.3f} s)"
        )
    ratio = large["plan_s"] / small["plan_s"]
    print(f"10k/1k ratio {ratio:.2f} (target <= 12); 10k in {large['plan_s']:.3f} s (target <= 1 s)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "seconds_1k": small["plan_s"],
        "seconds_10k": large["plan_s"],
        "ratio": round(ratio, 2),
        "details": [small, large],
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
