"""fault -> RF restored on the lab, through the runner's reconciliation with the pyinfra frontend (issue 21).

The example graph's fleet (health.samples 1), deployed with `depmirror pyinfra adjust` on a wiped lab and a
fresh store; the lab's watchers (Prometheus and rule evaluation every second, Alertmanager with group_wait
0 s, `depmirror serve` on the fast path), with the runner restarted with `reconcile:` enabled (frontend
pyinfra, act mode). Then the primary of a dependency is killed (SIGKILL, kept down), with a client looping
through lb1, and nothing else is done: the clock stops once

- the runner switched over (a `rollback` event),
- its reconciliation's adjust succeeded (a `reconcile` event),
- the applied plan holds the dependency at its planned replication factor again, and
- lb1 answers a request from the replacement instance (nginx's `X-Depmirror-Upstream` names it).

`fault_to_rf_restored_s` is that time. tests/e2e/test_reconcile_lab.py drives the same scenario and checks it;
bench/adjust_speed.py calls `measure` at its end. Alone, under the lab lock (it leaves the lab down):
`flock /tmp/depmirror-lab.lock .venv/bin/python bench/_rf_restored.py [--runs N]`, which writes
bench/results/rf_restored.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import depmirror_lab as lab
import yaml
from depmirror_lab import daemons, failover, watch

from depmirror.fleet.applied import plan_of
from depmirror.graph.load import load_graph
from depmirror.rollback.traffic_check import check_traffic
from depmirror.store import Event, EventFilter, open_store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "rf_restored.json"
GRAPH = ROOT / "inventories" / "example" / "graph.yml"
LB = "198.18.0.2"
DEPENDENCY = "catalog-api"  # active-active HTTP: every instance serves, so lb1 shows the new one at once
RESTORE_TIMEOUT_S = 120.0
# The reconciliation's rate limit for the scenario: a pass at the runner's start must not hold back the
# one after the fault (the default is 60 s; a quiet fleet's first pass after a fault is never held).
MIN_GAP_S = 5.0


@dataclass
class ReconcileFleet:
    paths: lab.LabPaths
    workdir: Path
    graph: Path
    store: str
    source: Path
    watch: watch.Watch


@dataclass
class Restored:
    dependency: str
    failed: str
    planned_rf: int
    fault: failover.FaultResult
    reconcile: Event | None = None
    replacement: str | None = None
    restored_at: float | None = None
    timings: dict[str, float | None] = field(default_factory=dict)
    problem: str | None = None

    @property
    def fault_to_rf_restored_s(self) -> float | None:
        return None if self.restored_at is None else round(self.restored_at - self.fault.fault_at, 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dependency": self.dependency,
            "failed": self.failed,
            "switched_to": self.fault.target,
            "replacement": self.replacement,
            "planned_rf": self.planned_rf,
            "fault_to_switched_s": self.fault.fault_to_switched_s,
            "fault_to_rf_restored_s": self.fault_to_rf_restored_s,
            "timings": self.timings,
            "reconcile_event": None if self.reconcile is None else self.reconcile.as_dict(),
            "client_errors": len(self.fault.client_errors),
            "problem": self.problem,
        }


def _run(argv: list[str], what: str, timeout_s: float = 900.0) -> str:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT, env=env, check=False)
    if done.returncode != 0:
        raise lab.LabError(f"{what} failed (rc {done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def pyinfra_adjust(paths: lab.LabPaths, source: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "depmirror.cli", "pyinfra", "adjust", "-i", str(source), "--json"]
    argv += ["--ssh-key", str(paths.ssh_key), "--known-hosts", str(paths.known_hosts)]
    report: dict[str, Any] = json.loads(_run(argv, "depmirror pyinfra adjust"))
    return report


def _fleet_file(source: Path, graph: Path, store: str, prometheus_url: str | None) -> None:
    data: dict[str, Any] = {"plugin": "depmirror.mirroring.graph", "graph": str(graph), "state_store": store}
    if prometheus_url:
        data["prometheus_url"] = prometheus_url  # the adjust must see the failed instance as Prometheus does
    source.write_text(yaml.safe_dump(data))


def start(paths: lab.LabPaths, workdir: Path, *, min_gap_s: float = MIN_GAP_S) -> ReconcileFleet:
    """Wipe, deploy with pyinfra, start the watchers, and restart the runner with reconciliation on."""
    lab.restore(paths)
    _run([str(Path(sys.executable).parent / "ansible-playbook"), "tests/integration/playbooks/wipe.yml",
          "-i", str(paths.inventory)], "wipe.yml")  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(GRAPH.read_text(encoding="utf-8"))
    for dependency in data["dependencies"].values():
        dependency.setdefault("health", {})["samples"] = 1  # an alert on the first failed probe
    graph = workdir / "graph.yml"
    graph.write_text(yaml.safe_dump(data, sort_keys=False))
    store = f"sqlite:///{(workdir / 'state.db').resolve()}"
    source = workdir / "fleet.depmirror.yml"
    _fleet_file(source, graph, store, None)
    pyinfra_adjust(paths, source)
    watched = watch.start(
        paths,
        watch.WatchSettings(
            graph=graph, store=store, inventories=(paths.inventory, source), collection=ROOT, cooldown_s=3.0
        ),
    )
    _fleet_file(source, graph, store, watched.prometheus_url)
    fleet = ReconcileFleet(paths, workdir, graph, store, source, watched)
    restart_runner(fleet, min_gap_s)
    failover.wait_healthy(watched, timeout_s=120)
    return fleet


def restart_runner(fleet: ReconcileFleet, min_gap_s: float) -> None:
    """The watch's runner again, its config with `reconcile:` (docs/runner.md, "Reconciliation")."""
    config_file = fleet.watch.dir / "runner.yml"
    config = yaml.safe_load(config_file.read_text())
    config["reconcile"] = {
        "enabled": True,
        "frontend": "pyinfra",
        "fleet_file": str(fleet.source),
        "min_gap_seconds": min_gap_s,
        "interval_seconds": 30,
    }
    config_file.write_text(yaml.safe_dump(config))
    argv = [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(config_file)]
    daemons.start(fleet.paths, "runner", argv, fleet.watch.dir / "logs" / "runner.log")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{fleet.watch.runner_url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise lab.LabError(f"the runner with reconciliation did not become ready (see {fleet.watch.dir / 'logs'})")


def _instances(store_url: str, dependency: str) -> tuple[int, list[dict[str, Any]], str | None]:
    """The applied plan's replication factor and instances for `dependency`, and the recorded primary."""
    with open_store(store_url) as store:
        plan = plan_of(store.applied_plan())
        primary = store.primary(dependency)
    item = next((d for d in plan.get("dependencies") or [] if d["name"] == dependency), {})
    return int(item.get("replication_factor") or 0), list(item.get("instances") or []), primary


def reconcile_events(store_url: str, dependency: str, since: float) -> list[Event]:
    with open_store(store_url) as store:
        found = store.events(
            EventFilter(dependency=dependency, kinds=("reconcile",), since=datetime.fromtimestamp(since, UTC))
        )
    return list(reversed(found))


def kill_and_wait_restored(
    fleet: ReconcileFleet, dependency: str = DEPENDENCY, timeout_s: float = RESTORE_TIMEOUT_S
) -> Restored:
    """Kill the dependency's primary; wait (bounded) until the RF is restored with lb1 serving the replacement."""
    graph = load_graph(fleet.graph)
    port = graph.dependencies[dependency].port
    planned_rf, before, _ = _instances(fleet.store, dependency)
    fault = failover.fault_and_wait(fleet.paths, fleet.watch, "kill", dependency, (LB, port), timeout_s=30)
    restored = Restored(dependency, fault.failed, planned_rf, fault)
    survivors = {i["host"] for i in before} - {fault.failed}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = reconcile_events(fleet.store, dependency, fault.fault_at - 0.2)
        restored.reconcile = next((e for e in events if e.outcome == "succeeded"), events[-1] if events else None)
        rf, instances, _ = _instances(fleet.store, dependency)
        counted = [i for i in instances if i.get("counts_towards_rf", True)]
        new = sorted({i["host"] for i in counted} - survivors)  # the failed one may stay, not counted
        succeeded = restored.reconcile is not None and restored.reconcile.outcome == "succeeded"
        if succeeded and new and rf >= planned_rf and len(counted) >= planned_rf:
            restored.replacement = new[0]
            address = graph.vms[new[0]].address
            check = check_traffic("http", LB, port, expect=f"{address}:{port}", requests=8, deadline_s=1.0)
            if check.ok:
                restored.restored_at = time.time()
                break
        time.sleep(0.2)
    else:
        restored.problem = f"RF not restored within {timeout_s:.0f}s of the switchover"
    event = restored.reconcile
    restored.timings = {
        "fault_to_switched_s": fault.fault_to_switched_s,
        "fault_to_adjust_started_s": None
        if event is None
        else round(event.time.timestamp() - (event.duration_s or 0.0) - fault.fault_at, 3),
        "adjust_s": None if event is None else event.duration_s,
        "fault_to_reconcile_recorded_s": None if event is None else round(event.time.timestamp() - fault.fault_at, 3),
        "fault_to_rf_restored_s": restored.fault_to_rf_restored_s,
    }
    return restored


def stop(fleet: ReconcileFleet, restored: Restored | None = None) -> None:
    watch.stop(fleet.paths)
    if restored is not None:  # the killed unit's drop-in (Restart=no) goes; the next wipe removes the rest
        failover.repair(fleet.paths, "kill", restored.dependency, restored.failed)


def measure(paths: lab.LabPaths, workdir: Path, runs: int = 1) -> dict[str, Any]:
    """`runs` faults on fresh fleets (the lab must be up); the median and every run, for a results JSON."""
    found = []
    for i in range(runs):
        fleet = start(paths, workdir / f"rf-restored-{i}")
        restored = None
        try:
            restored = kill_and_wait_restored(fleet)
            found.append(restored.to_dict())
            print(f"fault -> RF restored run {i + 1}: {restored.timings}", flush=True)
        finally:
            stop(fleet, restored)
    times = [r["fault_to_rf_restored_s"] for r in found if r["fault_to_rf_restored_s"] is not None]
    return {
        "fault_to_rf_restored_s": round(statistics.median(times), 3) if len(times) == len(found) else None,
        "fault_to_rf_restored_frontend": "pyinfra",
        "fault_to_rf_restored_runs": found,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="faults, each on a fresh fleet (default 3)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/_rf_restored.py: needs root (the lab)")
    if not 1 <= args.runs <= 10:
        sys.exit("bench/_rf_restored.py: --runs must be from 1 to 10")
    paths = lab.lab_paths()
    with tempfile.TemporaryDirectory(prefix="rf-restored-") as tmp:
        try:
            lab.up(paths)
            result = measure(paths, Path(tmp), args.runs)
        except lab.LabError as error:  # the lab broke under the bench: one line, no figure
            sys.exit(f"bench/_rf_restored.py: {error}"[:3000])
        finally:
            lab.down(paths)
    result["target_s"] = 30.0
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "fault_to_rf_restored_runs"}, indent=2))
    return 0 if result["fault_to_rf_restored_s"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
