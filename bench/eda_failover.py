"""Fault -> alert -> ansible-rulebook -> rollback.yml -> switched, on the lab (docs/performance.md, "Through
EDA"): the same chain as bench/failover.py with the collection's rulebook and event source in the runner's
place.

The example graph's fleet is deployed with its own store and the lab's watchers start (blackbox exporter,
Prometheus scraping and evaluating every second, Alertmanager with group_wait 0 s); the watch's runner is
stopped and ansible-rulebook, running extensions/eda/rulebooks/rollback.yml as shipped (throttle: once per
dependency within 5 minutes), listens on its port with its token, so Alertmanager's webhook reaches the
rulebook's source instead. Each fault SIGKILLs the primary of catalog-api or payments-api (alternating, each
dependency waiting out the throttle), with a client loop through the LB counting failed requests; after the
switch the instance is repaired and failed back (playbooks/failback.yml).

Writes bench/results/eda_failover.json: fault_to_switched and webhook_to_switched (p50 / max), client errors
and every fault. "switched" is when rollback.yml recorded its event (after nginx reloaded and the traffic
check passed: the playbook path records no separate switch time); "webhook" is when the source received
Alertmanager's POST (the event's trigger.received_at), as for the runner.

Needs root and the lab; takes the lab lock (/tmp/depmirror-lab.lock) or the one it inherits from
`flock /tmp/depmirror-lab.lock .venv/bin/python bench/eda_failover.py ...`; brings the lab down at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import depmirror_lab as lab
import yaml
from depmirror_lab import daemons, failover, machine, watch

from depmirror.graph.load import load_graph

sys.path.insert(0, str(Path(__file__).resolve().parent))
# bench/failover.py: one lock protocol and one percentile for both benchmarks.
from failover import lab_lock, percentile

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "eda_failover.json"
RULEBOOK = ROOT / "extensions" / "eda" / "rulebooks" / "rollback.yml"
BIN = Path(sys.executable).parent
DEPENDENCIES = ("catalog-api", "payments-api")
LB = "198.18.0.2"
THROTTLE_S = 300.0  # the shipped rulebook's once_within: the same dependency is faulted again only after it
DECISION_TIMEOUT_S = 90.0


def start_rulebook(watched: watch.Watch, workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """ansible-rulebook on the stopped runner's port and token, with an inventory directory as a user has."""
    port = urlparse(watched.runner_url).port
    inventory = workdir / "inventory"
    (inventory / "group_vars").mkdir(parents=True, exist_ok=True)
    for source in watched.inventories:
        shutil.copy(source, inventory / Path(source).name)
    group_vars = {"depmirror_prometheus_url": watched.prometheus_url, "rollback_health_interval": 1.0}
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_vars))
    variables = {"depmirror_graph": watched.graph, "depmirror_state_store": watched.store, "depmirror_eda_port": port}
    (workdir / "vars.yml").write_text(yaml.safe_dump(variables))
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "DEPMIRROR_EDA_TOKEN": watched.token,
    }
    argv = [str(BIN / "ansible-rulebook"), "-r", str(RULEBOOK), "-i", str(inventory), "--vars", "vars.yml"]
    log = workdir / "rulebook.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*argv, "-E", "DEPMIRROR_EDA_TOKEN", "-v"], stdout=output, stderr=subprocess.STDOUT, env=env, cwd=workdir
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise lab.LabError(f"ansible-rulebook exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return process, log
        except OSError:
            time.sleep(0.3)
    raise lab.LabError(f"ansible-rulebook's source did not listen within 90 s: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def one_fault(paths: lab.LabPaths, watched: watch.Watch, dependency: str) -> dict[str, Any]:
    """SIGKILL the primary with a client loop through the LB; wait for the rulebook's rollback; fail back."""
    primary = failover.current_primary(watched.store, dependency)
    failover.prepare(paths, "kill", dependency, primary)
    port = load_graph(watched.graph).dependencies[dependency].port
    with failover.ClientLoop(LB, port, max_seconds=DECISION_TIMEOUT_S + 10) as loop:
        time.sleep(0.5)
        fault_at = failover.inject(paths, "kill", dependency, primary)
        event = failover.wait_event(
            watched.store, dependency, ("rollback", "refused"), fault_at - 0.2, DECISION_TIMEOUT_S
        )
        time.sleep(1.0)  # requests after the switch count too
    result: dict[str, Any] = {
        "dependency": dependency,
        "failed": primary,
        "fault_at": datetime.fromtimestamp(fault_at, UTC).isoformat(),
        "requests": loop.sent,
        "client_errors": list(loop.errors),
    }
    if event is None:
        result["outcome"] = f"no decision within {DECISION_TIMEOUT_S:.0f}s"
        return result
    switched = event.time.timestamp()
    received = event.trigger.get("received_at")
    result.update(
        outcome=f"{event.kind}: {event.outcome}",
        target=event.target,
        fault_to_switched_s=round(switched - fault_at, 3),
        webhook_to_switched_s=round(switched - datetime.fromisoformat(received).timestamp(), 3) if received else None,
        trigger=event.trigger,
    )
    result["recovery"] = failover.recover(paths, watched, ROOT, "kill", dependency, primary, switched_at=switched)
    return result


def run(paths: lab.LabPaths, faults: int, workdir: Path) -> list[dict[str, Any]]:
    fleet = failover.deploy(paths, ROOT, workdir, ROOT / "inventories/example/graph.yml", samples=1)
    settings = watch.WatchSettings(
        graph=fleet.graph, store=fleet.store, inventories=fleet.inventories, collection=ROOT, fast_path=False
    )
    watched = watch.start(paths, settings)
    results: list[dict[str, Any]] = []
    rulebook = None
    try:
        daemons.stop(paths, "runner")  # the rulebook takes its port: Alertmanager's webhook goes to EDA now
        rulebook, log = start_rulebook(watched, workdir)
        failover.wait_healthy(watched, timeout_s=120)
        last: dict[str, float] = {}
        for number in range(faults):
            dependency = DEPENDENCIES[number % len(DEPENDENCIES)]
            wait = last.get(dependency, 0.0) + THROTTLE_S + 5 - time.monotonic()
            if wait > 0:
                print(f"waiting {wait:.0f}s for {dependency}'s throttle window to pass", flush=True)
                time.sleep(wait)
            last[dependency] = time.monotonic()
            try:
                result = one_fault(paths, watched, dependency)
            except (lab.LabError, subprocess.TimeoutExpired) as error:
                result = {"dependency": dependency, "outcome": "error", "error": str(error)[-1500:]}
            results.append(result)
            print(
                f"#{number + 1} {dependency}: {result.get('outcome')}, fault->switched "
                f"{result.get('fault_to_switched_s')}s, webhook->switched {result.get('webhook_to_switched_s')}s, "
                f"{len(result.get('client_errors', []))} errors in {result.get('requests', 0)} requests",
                flush=True,
            )
            if result["outcome"] == "error":
                break
    finally:
        if rulebook is not None:
            stop(rulebook)
            shutil.copy(log, paths.state / "eda-rulebook.log")
        watch.stop(paths)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=4, help="faults in all, alternating two dependencies")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not 1 <= args.faults <= 40:
        parser.error("--faults takes 1..40 (each dependency waits 5 minutes between its faults)")
    paths = lab.lab_paths(ROOT)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = machine.load()
    with lab_lock():
        lab.up(paths)
        lab.restore(paths)
        try:
            with tempfile.TemporaryDirectory(prefix="depmirror-eda-failover-") as workdir:
                results = run(paths, args.faults, Path(workdir))
        finally:
            lab.restore(paths)
            lab.down(paths)
    switched = [r for r in results if str(r.get("outcome", "")).startswith("rollback: succeeded")]
    fault = [r["fault_to_switched_s"] for r in switched]
    webhook = [r["webhook_to_switched_s"] for r in switched if r.get("webhook_to_switched_s") is not None]
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
            "health_samples": 1,
            "path": "ansible-rulebook run_playbook rollback.yml",
            "fault": "kill",
        },
        "faults": len(results),
        "switched": len(switched),
        "fault_to_switched_p50_s": percentile(fault, 0.5),
        "fault_to_switched_max_s": max(fault, default=None),
        "webhook_to_switched_p50_s": percentile(webhook, 0.5),
        "webhook_to_switched_max_s": max(webhook, default=None),
        "client_errors": sum(len(r.get("client_errors", [])) for r in results),
        "client_requests": sum(r.get("requests", 0) for r in results),
        "faults_detail": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "faults_detail"}, indent=2))
    return 0 if len(switched) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
