"""Fault -> alert -> runner -> switched, on the lab, with the real chain (docs/performance.md).

The example graph's fleet is deployed with its own store, then the lab's watchers start (blackbox exporter,
Prometheus scraping and evaluating every second, Alertmanager with group_wait 0 s, `depmirror serve` with the
fast path). For each kind (kill: SIGKILL and kept down; hang: SIGSTOP; cut: the VM's cable pulled) the
primary of an HTTP dependency is faulted N times, alternating between the two active-active dependencies,
with a client loop through the LB counting failed requests; after each switch the instance is repaired and
failed back (playbooks/failback.yml), so the next fault hits the new primary.

Writes bench/results/failover.json: fault_to_switched_p50_s / p99_s, webhook_to_switched_p50_s / p99_s,
client_errors (per kind and in total) and every fault. A fault that switched nothing goes to `failed_faults`
and one over the p99 target (3.0 s) to `slow_faults`, each with its chain: when the probe failed in
Prometheus, the alert fired, Alertmanager notified, the runner received the webhook and decided (with its
reason), the switch, the failback that followed, and the log lines of that window. The run goes on after a
bad fault. The machine's load at the start and the end is recorded: other work shares its cores.

Needs root and the lab; takes the lab lock (/tmp/depmirror-lab.lock), or uses the one it inherits from
`flock /tmp/depmirror-lab.lock .venv/bin/python bench/failover.py ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import depmirror_lab as lab
from depmirror_lab import chain, failover, machine, watch

from depmirror.graph.load import load_graph

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "failover.json"
LOCK = Path("/tmp/depmirror-lab.lock")
DEPENDENCIES = ("catalog-api", "payments-api")
LB = "198.18.0.2"
# Stop a run whose lab cannot be brought back to a healthy fleet: the faults after it would measure nothing.
MAX_BROKEN_RECOVERIES = 2


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))], 3)


def summary(results: list[failover.FaultResult]) -> dict[str, Any]:
    switched = [r for r in results if not r.failed_fault]
    fault = [r.fault_to_switched_s for r in switched if r.fault_to_switched_s is not None]
    webhook = [r.webhook_to_switched_s for r in switched if r.webhook_to_switched_s is not None]
    return {
        "faults": len(results),
        "switched": len(switched),
        "failed": len(results) - len(switched),
        "slow": sum(1 for r in results if r.slow),
        "fault_to_switched_p50_s": percentile(fault, 0.5),
        "fault_to_switched_p99_s": percentile(fault, 0.99),
        "fault_to_switched_max_s": max(fault, default=None),
        "webhook_to_switched_p50_s": percentile(webhook, 0.5),
        "webhook_to_switched_p99_s": percentile(webhook, 0.99),
        "client_errors": sum(len(r.client_errors) for r in results),
        "client_requests": sum(r.requests for r in results),
        # The repair and failback.yml after a fault failed (the fault itself may have switched in time).
        "recoveries_failed": sum(1 for r in results if "error" in r.failback),
    }


def steps(results: list[failover.FaultResult]) -> dict[str, dict[str, float | None]]:
    """p50 / max of each step of the chain over the faults that switched: where the time goes."""
    table: dict[str, dict[str, float | None]] = {}
    for step in chain.STEPS:
        values = [r.chain["steps_s"][step] for r in results if not r.failed_fault and r.chain.get("steps_s")]
        present = [v for v in values if v is not None]
        table[step] = {"p50": percentile(present, 0.5), "max": max(present, default=None)}
    return table


def fault_report(result: failover.FaultResult) -> dict[str, Any]:
    """A failed or slow fault as a reader needs it: what, when, what happened at each step, and why."""
    return {
        "kind": result.kind,
        "dependency": result.dependency,
        "instance": result.failed,
        "fault_at": datetime.fromtimestamp(result.fault_at, UTC).isoformat(),
        "outcome": result.outcome,
        "event_kind": result.event_kind,
        "fault_to_switched_s": result.fault_to_switched_s,
        "error": result.error,
        "load": result.load,
        "cpu_busy": result.cpu_busy,
        "chain": result.chain,
        "failback": result.failback,
    }


@contextlib.contextmanager
def lab_lock() -> Iterator[None]:
    """The lab lock, once: `flock LOCK cmd` hands its locked descriptor down, and locking the file again
    through a new one would wait for ever on ourselves; an inherited descriptor is locked again at no cost."""
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == str(LOCK):
                fcntl.flock(int(fd), fcntl.LOCK_EX)
                yield
                return
    handle: IO[str]
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def run_faults(
    paths: lab.LabPaths,
    watched: watch.Watch,
    kinds: list[str],
    faults: int,
    results: list[failover.FaultResult],
    relabel_wait_s: float = failover.RELABEL_WAIT_S,
) -> str | None:
    """Every fault in turn, each recovered and failed back; why the run stopped early, or None."""
    graph = load_graph(watched.graph)
    broken = 0
    for kind in kinds:
        for number in range(faults):
            dependency = DEPENDENCIES[number % len(DEPENDENCIES)]
            try:
                result = failover.fault_and_wait(
                    paths, watched, kind, dependency, (LB, graph.dependencies[dependency].port)
                )
            except (lab.LabError, subprocess.TimeoutExpired) as error:
                print(f"{kind:4} #{number + 1:<2} {dependency:12} could not be faulted: {error}", flush=True)
                result = failover.FaultResult(
                    kind, dependency, "?", time.time(), "none", "not faulted", None, None, None, 0, [], error=str(error)
                )
                results.append(result)
                if not _restore(paths, watched, result):
                    return f"the lab did not come back after {kind} #{number + 1}: {result.failback}"
                continue
            results.append(result)
            broke = f" (broke at {result.chain.get('broke_at')})" if result.failed_fault else ""
            print(
                f"{kind:4} #{number + 1:<2} {dependency:12} {result.failed} -> {result.target}: "
                f"{result.outcome}{broke}, fault->switched {result.fault_to_switched_s}s, "
                f"webhook->switched {result.webhook_to_switched_s}s, steps {result.chain.get('steps_s')}, "
                f"{len(result.client_errors)} errors in {result.requests} requests, load {result.load.get('load1')}",
                flush=True,
            )
            try:
                result.failback = failover.recover(
                    paths,
                    watched,
                    ROOT,
                    kind,
                    dependency,
                    result.failed,
                    switched_at=result.switched_at,
                    relabel_wait_s=relabel_wait_s,
                )
                broken = 0
            except (lab.LabError, subprocess.TimeoutExpired) as error:
                result.failback = {"error": str(error)[-1500:]}
                print(f"     recovery failed: {str(error)[-300:]}", flush=True)
                if not _restore(paths, watched, result):
                    broken += 1
                    if broken >= MAX_BROKEN_RECOVERIES:
                        return f"the lab did not come back after {kind} #{number + 1}: {result.failback}"
            time.sleep(3.5)  # the runner's cooldown (3 s) after the failback
    return None


def _restore(paths: lab.LabPaths, watched: watch.Watch, result: failover.FaultResult) -> bool:
    """Undo every fault on every host and start every instance again; whether the fleet is healthy."""
    try:
        lab.restore(paths)
        for dependency, host, _ in watched.instances:
            failover.ssh(
                paths,
                host,
                f"rm -f {failover.DROP_IN.format(dependency=dependency)}; "
                f"systemctl kill --signal=SIGCONT depmirror-{dependency}.service; "
                f"systemctl daemon-reload; systemctl enable --now depmirror-{dependency}.service",
            )
        watched.refresh_targets(wait_s=failover.RELABEL_WAIT_S)
        failover.wait_healthy(watched, timeout_s=90)
    except (lab.LabError, subprocess.TimeoutExpired) as error:
        result.failback["restore_error"] = str(error)[-600:]
        return False
    result.failback["restored"] = "every host and instance restarted and healthy"
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=20, help="faults of each kind (default 20)")
    parser.add_argument("--kinds", default=",".join(failover.KINDS), help="comma-separated: kill,hang,cut")
    parser.add_argument("--samples", type=int, default=1, help="health.samples of every dependency (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--no-relabel-wait",
        action="store_true",
        help="fault the next primary without waiting for Prometheus to probe it as the primary (the bench before "
        "issue 22: a fault can then land while Prometheus swaps the probe's series)",
    )
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(failover.KINDS))
    if unknown or not kinds or args.faults < 1:
        parser.error(f"--kinds takes {','.join(failover.KINDS)} and --faults at least 1 (got {args.kinds!r})")
    paths = lab.lab_paths(ROOT)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = machine.load()
    results: list[failover.FaultResult] = []
    stopped: str | None = None
    with lab_lock():
        lab.up(paths)
        lab.restore(paths)
        with tempfile.TemporaryDirectory(prefix="depmirror-failover-") as workdir:
            try:
                fleet = failover.deploy(
                    paths, ROOT, Path(workdir), ROOT / "inventories/example/graph.yml", samples=args.samples
                )
                watched = failover.watch_fleet(
                    paths, fleet, ROOT, healthy_within_s=120, cooldown_s=3.0, flap_max_transitions=10_000
                )
                relabel_wait_s = 0.0 if args.no_relabel_wait else failover.RELABEL_WAIT_S
                stopped = run_faults(paths, watched, kinds, args.faults, results, relabel_wait_s)
            finally:
                _keep_logs(paths, args.out)
                watch.stop(paths)
                lab.restore(paths)
    report = {
        "started": started,
        "machine": {
            "cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "load_start": load_start,
            "load_end": machine.load(),
        },
        "settings": {
            "scrape_and_evaluation_s": 1,
            "group_wait_s": 0,
            "health_samples": args.samples,
            "path": "fast",
            "faults_per_kind": args.faults,
            "slow_over_s": failover.SLOW_S,
            "relabel_wait": not args.no_relabel_wait,
        },
        "stopped_early": stopped,
        **summary(results),
        "by_kind": {kind: summary([r for r in results if r.kind == kind]) for kind in kinds},
        "steps_s": steps(results),
        "failed_faults": [fault_report(r) for r in results if r.failed_fault],
        "slow_faults": [fault_report(r) for r in results if r.slow],
        "failed_recoveries": [fault_report(r) for r in results if "error" in r.failback],
        "faults_detail": [r.to_dict() for r in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    shown = ("faults_detail", "failed_faults", "slow_faults", "failed_recoveries")
    print(json.dumps({k: v for k, v in report.items() if k not in shown}, indent=2))
    for bad in report["failed_faults"] + report["slow_faults"]:
        print(
            f"{bad['kind']} {bad['dependency']}@{bad['instance']}: {bad['outcome']}, {bad['fault_to_switched_s']}s, "
            f"broke at {bad['chain'].get('broke_at')}, at {bad['chain'].get('at')}"
        )
    return 1 if stopped or report["failed"] else 0


def _keep_logs(paths: lab.LabPaths, out: Path) -> None:
    """The watchers' whole logs, kept out of the checkout (the next run's watch starts them afresh); the
    JSON carries the lines of every failed or slow fault's window."""
    logs = paths.state / "watch" / "logs"
    target = paths.state / "failover-logs" / out.stem
    with contextlib.suppress(OSError):
        target.mkdir(parents=True, exist_ok=True)
        for log in logs.glob("*.log"):
            (target / log.name).write_bytes(log.read_bytes())


if __name__ == "__main__":
    sys.exit(main())
