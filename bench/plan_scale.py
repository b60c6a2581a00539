"""How long compute_plan takes on synthetic fleets of 1k and 10k dependencies.

Each graph: N dependencies with 5 incoming calls each (from services and from other dependencies),
3 zones, 600 VMs, a cost budget that cuts some mirrors. Timed: compute_plan from an empty state (every
instance placed) and again with the state it produced (the steady state, everything kept). Also shown,
not part of the target: validating the graph data (JSON Schema + checks) and Plan.to_dict().

Writes bench/results/plan_scale.json: seconds_1k, seconds_10k (compute_plan, empty state, best of 7
wall-clock runs, the two sizes alternating; the CPU seconds are recorded too, as other work on the machine
inflates wall time), ratio (10k / 1k; linear scaling gives 10) and cpu_ratio (the same from CPU time).

Also calls_ratio: the Python function calls of one 10k plan over those of one 1k plan, counted by
cProfile. It does not depend on the machine's state, and shows whether the work grows linearly; the time
ratio also moves with the CPU caches (a 10k plan's name-keyed dicts outgrow them, a 1k plan's do not) and
with whatever else the machine is doing.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
from functools import partial
from pathlib import Path
from typing import Any

from depmirror.graph.load import parse_graph
from depmirror.graph.model import Graph
from depmirror.planner.plan import compute_plan

sys.path.insert(0, str(Path(__file__).parent))
from _synthetic import best_of, machine, synthetic_graph

VMS = 600
RESULTS = Path(__file__).parent / "results" / "plan_scale.json"


PLAN_RUNS = 7


def load(dependencies: int) -> tuple[float, Graph]:
    """Validate the synthetic data; only the Graph outlives this call, as in the CLI."""
    data = synthetic_graph(dependencies, vms=VMS)
    validate_s, _, graph = best_of(1, lambda: parse_graph(data, f"synthetic-{dependencies}"))
    return validate_s, graph


def function_calls(graph: Graph) -> int:
    profiler = cProfile.Profile()
    profiler.runcall(compute_plan, graph, now=1000.0)
    return int(pstats.Stats(profiler).total_calls)  # type: ignore[attr-defined]


def measure(graphs: dict[int, Graph]) -> dict[int, dict[str, Any]]:
    """Plan runs of both sizes alternate, so that a busy spell on the machine hits both alike."""
    timings: dict[int, list[tuple[float, float]]] = {size: [] for size in graphs}
    for _ in range(PLAN_RUNS):
        for size, graph in graphs.items():
            wall, cpu, _ = best_of(1, partial(compute_plan, graph, now=1000.0))
            timings[size].append((wall, cpu))
    rows: dict[int, dict[str, Any]] = {}
    for size, graph in graphs.items():
        plan_s, cpu_s = min(timings[size])
        plan = compute_plan(graph, now=1000.0)
        steady_s, _, _ = best_of(3, partial(compute_plan, graph, plan.next_state, now=2000.0))
        dict_s, _, document = best_of(1, plan.to_dict)
        rows[size] = {
            "dependencies": size,
            "edges": len(graph.edges()),
            "instances": sum(len(d["instances"]) for d in document["dependencies"]),
            "cycles": len(document["cycles"]),
            "budget_cuts": len(document["budget"]["cut"]),
            "plan_s": round(plan_s, 4),
            "plan_cpu_s": round(cpu_s, 4),
            "plan_cpu_min_s": round(min(cpu for _, cpu in timings[size]), 4),
            "steady_plan_s": round(steady_s, 4),
            "to_dict_s": round(dict_s, 4),
            "function_calls": function_calls(graph),
        }
    return rows


def main() -> None:
    validated = {size: load(size) for size in (1_000, 10_000)}
    rows = measure({size: graph for size, (_, graph) in validated.items()})
    for size, (validate_s, _) in validated.items():
        rows[size]["validate_s"] = round(validate_s, 4)
    small, large = rows[1_000], rows[10_000]
    for row in (small, large):
        print(
            f"{row['dependencies']:>6} deps, {row['edges']} edges, {row['instances']} instances, "
            f"{row['cycles']} cycles, {row['budget_cuts']} budget cuts: plan {row['plan_s']:.3f} s "
            f"(cpu {row['plan_cpu_s']:.3f} s), "
            f"steady plan {row['steady_plan_s']:.3f} s (validate {row['validate_s']:.3f} s, "
            f"to_dict {row['to_dict_s']:.3f} s)"
        )
    ratio = large["plan_s"] / small["plan_s"]
    cpu_ratio = large["plan_cpu_min_s"] / small["plan_cpu_min_s"]
    calls_ratio = large["function_calls"] / small["function_calls"]
    print(
        f"10k/1k ratio {ratio:.2f} (target <= 12; CPU time ratio {cpu_ratio:.2f}; "
        f"function calls ratio {calls_ratio:.2f}); "
        f"10k in {large['plan_s']:.3f} s (target <= 1 s)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "seconds_1k": small["plan_s"],
        "seconds_10k": large["plan_s"],
        "ratio": round(ratio, 2),
        "cpu_ratio": round(cpu_ratio, 2),
        "calls_ratio": round(calls_ratio, 2),
        "details": [small, large],
        "machine": machine(),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
