"""What the graph file's safety checks and the structural weights cost (issue 19).

- The alias bomb (9 levels of 9 aliases in a typed field, ~620 bytes): `depmirror plan` in a child process of
  its own, its wall time and peak memory (it took 44 s and 3.1 GB before the expansion bound), and the
  refusal alone, in process.
- A 10,000-dependency graph written as YAML: load_graph as it is, and with a `*` appended in a comment,
  which makes the alias walk run (a file without `*` has no alias and skips it).
- compute_weights on the same graph (graded impact, the two-origin search inside its cycles).

Writes bench/results/graph_limits.json. Best of several runs; CPU seconds beside wall seconds, as other
work on the machine inflates wall time.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from depmirror.errors import ConfigError
from depmirror.graph.load import load_graph
from depmirror.planner.weights import compute_weights

sys.path.insert(0, str(Path(__file__).parent))
from _synthetic import best_of, machine, synthetic_graph

RESULTS = Path(__file__).parent / "results" / "graph_limits.json"


def alias_bomb() -> str:
    levels = ['      - &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"      - &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    head = ["zones: {zone-a: {}}", "vms: {vm-a1: {address: 198.18.0.11, zone: zone-a}}", "dependencies:"]
    head += ["  d:", "    kind: http", "    port: 8080", "    deploy: {command: x}", "    tier:"]
    return "\n".join(head + levels) + "\n"


def refuse(path: Path) -> None:
    try:
        load_graph(path)
    except ConfigError:
        return
    raise AssertionError("the alias bomb was accepted")


def bomb(directory: Path) -> dict[str, Any]:
    path = directory / "bomb.yml"
    path.write_text(alias_bomb(), encoding="utf-8")
    probe = (
        "import resource, subprocess, sys, time\n"
        "began = time.perf_counter()\n"
        f"done = subprocess.run([sys.executable, '-m', 'depmirror.cli', 'plan', '--graph', {str(path)!r}],"
        " capture_output=True, timeout=120)\n"
        "print(time.perf_counter() - began, done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    runs = [subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True) for _ in range(3)]
    samples = [run.stdout.split() for run in runs]
    refusal_s, _, _ = best_of(5, lambda: refuse(path))
    return {
        "bytes": path.stat().st_size,
        "cli_wall_s": round(min(float(s[0]) for s in samples), 3),
        "cli_exit_code": int(samples[0][1]),
        "cli_peak_rss_mb": round(max(int(s[2]) for s in samples) / 1024, 1),
        "refusal_in_process_s": round(refusal_s, 4),
    }


def fleet(directory: Path) -> dict[str, Any]:
    text = yaml.safe_dump(synthetic_graph(10_000), sort_keys=False)
    plain, aliased = directory / "g10k.yml", directory / "g10k-star.yml"
    plain.write_text(text, encoding="utf-8")
    aliased.write_text(text + "# a * makes the alias walk run\n", encoding="utf-8")
    load_s, load_cpu, graph = best_of(3, lambda: load_graph(plain))
    walk_s, walk_cpu, _ = best_of(3, lambda: load_graph(aliased))
    weights_s, weights_cpu, _ = best_of(7, lambda: compute_weights(graph))
    return {
        "dependencies": len(graph.dependencies),
        "bytes": len(text.encode()),
        "load_s": round(load_s, 3),
        "load_cpu_s": round(load_cpu, 3),
        "load_with_alias_walk_s": round(walk_s, 3),
        "load_with_alias_walk_cpu_s": round(walk_cpu, 3),
        "compute_weights_s": round(weights_s, 3),
        "compute_weights_cpu_s": round(weights_cpu, 3),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        result = {"alias_bomb": bomb(directory), "fleet_10k": fleet(directory), "machine": machine()}
    result["peak_rss_mb_of_this_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = json.dumps(result, indent=2)
    RESULTS.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    started = time.time()
    main()
    print(f"took {time.time() - started:.0f} s", file=sys.stderr)
