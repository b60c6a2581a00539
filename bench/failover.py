"""Fault -> alert -> runner -> switched, on the lab, with the real chain (docs/performance.md).

The example graph's fleet is deployed with its own store, then the lab's watchers start (blackbox exporter,
Prometheus scraping and evaluating every second, Alertmanager with group_wait 0 s, `depmirror serve` with the
fast path). For each kind (kill: SIGKILL and kept down; hang: SIGSTOP; cut: the VM's cable pulled) the
primary of an HTTP dependency is faulted N times, alternating between the two active-active dependencies,
with a client loop through the LB counting failed requests; after each switch the instance is repaired and
failed back (playbooks/failback.yml), so the next fault hits the new primary.

Writes bench/results/failover.json: fault_to_switched_p50_s / p99_s, webhook_to_switched_p50_s / p99_s,
client_errors (per kind and in total) and every fault. Needs root and the lab; takes the lab lock.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import depmirror_lab as lab
from depmirror_lab import failover, watch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "failover.json"
LOCK = Path("/tmp/depmirror-lab.lock")
DEPENDENCIES = ("catalog-api", "payments-api")
LB = "198.18.0.2"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))], 3)


def summary(results: list[failover.FaultResult]) -> dict[str, Any]:
    switched = [r for r in results if r.outcome == "succeeded"]
    fault = [r.fault_to_switched_s for r in switched if r.fault_to_switched_s is not None]
    webhook = [r.webhook_to_switched_s for r in switched if r.webhook_to_switched_s is not None]
    return {
        "faults": len(results),
        "switched": len(switched),
        "fault_to_switched_p50_s": percentile(fault, 0.5),
        "fault_to_switched_p99_s": percentile(fault, 0.99),
        "webhook_to_switched_p50_s": percentile(webhook, 0.5),
        "webhook_to_switched_p99_s": percentile(webhook, 0.99),
        "client_errors": sum(len(r.client_errors) for r in results),
        "client_requests": sum(r.requests for r in results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=20, help="faults of each kind (default 20)")
    parser.add_argument("--kinds", default=",".join(failover.KINDS), help="comma-separated: kill,hang,cut")
    parser.add_argument("--samples", type=int, default=1, help="health.samples of every dependency (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    paths = lab.lab_paths(ROOT)
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lab.up(paths)
        lab.restore(paths)
        results: list[failover.FaultResult] = []
        with tempfile.TemporaryDirectory(prefix="depmirror-failover-") as workdir:
            try:
                fleet = failover.deploy(
                    paths, ROOT, Path(workdir), ROOT / "inventories/example/graph.yml", samples=args.samples
                )
                watched = watch.start(
                    paths,
                    watch.WatchSettings(
                        graph=fleet.graph,
                        store=fleet.store,
                        inventories=fleet.inventories,
                        collection=ROOT,
                        cooldown_s=3.0,
                        flap_max_transitions=10_000,
                    ),
                )
                from depmirror.graph.load import load_graph

                graph = load_graph(fleet.graph)
                failover.wait_healthy(watched, timeout_s=120)
                for kind in kinds:
                    for number in range(args.faults):
                        dependency = DEPENDENCIES[number % len(DEPENDENCIES)]
                        result = failover.fault_and_wait(
                            paths, watched, kind, dependency, (LB, graph.dependencies[dependency].port)
                        )
                        results.append(result)
                        print(
                            f"{kind:4} #{number + 1:<2} {dependency:12} {result.failed} -> {result.target}: "
                            f"{result.outcome}, fault->switched {result.fault_to_switched_s}s, "
                            f"webhook->switched {result.webhook_to_switched_s}s, "
                            f"{len(result.client_errors)} errors in {result.requests} requests",
                            flush=True,
                        )
                        failover.recover(
                            paths, watched, ROOT, kind, dependency, result.failed, switched_at=result.switched_at
                        )
                        time.sleep(3.5)  # the runner's cooldown (3 s) after the failback
            finally:
                watch.stop(paths)
                lab.restore(paths)
    report = {
        "machine": {"cores": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "settings": {
            "scrape_and_evaluation_s": 1,
            "group_wait_s": 0,
            "health_samples": args.samples,
            "path": "fast",
            "faults_per_kind": args.faults,
        },
        **summary(results),
        "by_kind": {kind: summary([r for r in results if r.kind == kind]) for kind in kinds},
        "faults_detail": [r.to_dict() for r in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "faults_detail"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
