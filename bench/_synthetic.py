"""Synthetic fleets shared by the benches: graph data as a graph file would hold it, and timing helpers.

Each graph: N dependencies with 5 incoming calls each (from services and from other dependencies, with a
few back edges that close cycles), 3 zones, a VM pool sized to hold twice RF 3 of everything, and a cost
budget that cuts some mirrors. VM and load balancer addresses come from 198.18.0.0/15 (RFC 2544, the
project's lab range), so synthetic data never names a real network.
"""

from __future__ import annotations

import gc
import ipaddress
import os
import platform
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

ZONES = ("zone-a", "zone-b", "zone-c")
EDGES_PER_DEPENDENCY = 5
_LAB_NETWORK = ipaddress.ip_network("198.18.0.0/15")
T = TypeVar("T")


def lab_address(index: int) -> str:
    """The index-th host address of 198.18.0.0/15 (skipping .0 of the network)."""
    if not 0 <= index < _LAB_NETWORK.num_addresses - 2:
        raise ValueError(f"index {index} is outside 198.18.0.0/15")
    return str(_LAB_NETWORK.network_address + 1 + index)


def synthetic_graph(dependencies: int, vms: int = 600, load_balancers: int = 0, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    services = max(10, dependencies // 10)
    capacity = -(-dependencies * 3 * 2 // vms)  # room for twice RF 3 everywhere
    data: dict[str, Any] = {
        "version": 1,
        "policy": {"cost_budget": dependencies * 3.6},
        "zones": {zone: {} for zone in ZONES},
        "vms": {
            f"vm-{i:04d}": {"address": lab_address(i), "zone": ZONES[i % 3], "capacity": capacity} for i in range(vms)
        },
        "load_balancers": {
            f"lb-{i}": {"address": lab_address(vms + i), "zone": ZONES[i % 3]} for i in range(load_balancers)
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


def best_of(runs: int, action: Callable[[], T]) -> tuple[float, float, T]:
    """Fastest wall-clock run and the CPU seconds of that run (other work on the machine inflates wall).

    A full collection before each run, so that one run does not pay for the garbage of the one before.
    """
    timings: list[tuple[float, float]] = []
    result: T
    for _ in range(runs):
        gc.collect()
        began, cpu_began = time.perf_counter(), time.process_time()
        result = action()
        timings.append((time.perf_counter() - began, time.process_time() - cpu_began))
    wall, cpu = min(timings)
    return wall, cpu, result


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
