"""PostgreSQL failover on the lab through the runner's fast path: kill the primary under an INSERT load, measure.

Each run deploys the lab's PostgreSQL variant afresh (inventories/lab-postgres: a primary and two streaming
standbys, one per zone, nginx stream on lb1) with the lab's watchers (blackbox, Prometheus and Alertmanager
every second, `health.samples` 1, and `depmirror serve` in act mode with the fast path on:
tests/e2e/postgres_runner.py), starts one client that INSERTs through lb1 in a loop (one row per
transaction, 50 ms pause after an error) and SIGKILLs the primary's server (its unit stopped so systemd
keeps it down). Nothing else starts the switchover: the alert does. Figures per run:
- fault -> switched: from the kill (the VM's clock right after it) to `switched_at` in the rollback event
  (lb1 reloaded with the new primary), as bench/failover.py measures it for HTTP;
- webhook -> switched: the runner's own part, from Alertmanager's POST to `switched_at`;
- kill -> first ack: to the first INSERT acknowledged again through lb1 (by the new primary);
- the fast path's phase timings, acknowledged INSERTs and how many are not readable afterwards
  (synchronous: must be 0), and the path (`fast`; `playbook` would mean the fast path fell back).

Run it holding the lab lock: `flock /tmp/depmirror-lab.lock .venv/bin/python bench/postgres_failover.py`.
Writes bench/results/postgres_failover.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the lab test helpers (tests/) deploy, watch and drive the variant

import depmirror_lab as lab  # noqa: E402
from tests.e2e.postgres_runner import kill_under_load, summary, watched_postgres  # noqa: E402
from tests.integration.postgres_fleet import readable  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from failover import lab_lock  # noqa: E402  (takes the lab lock, or re-locks the one `flock` handed down)

RESULTS = ROOT / "bench" / "results" / "postgres_failover.json"


def one_run(paths: lab.LabPaths, workdir: Path, data_loss: str) -> dict[str, Any]:
    with watched_postgres(paths, workdir, data_loss) as watched:
        run = kill_under_load(watched.world)
        row = summary(run)
        ok = row["event"] == "rollback/succeeded" and row["path"] == "fast" and row["events"] == 1
        acked = sorted(run.load.acked)
        lost = sorted(set(acked) - readable(run.address, run.port, acked)) if ok else acked
        return {"data_loss": data_loss, "ok": ok, **row, "lost": len(lost)}


def summary_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def spread(key: str) -> dict[str, float | None]:
        values = [r[key] for r in runs if r.get(key) is not None]
        return {
            "median": round(statistics.median(values), 3) if values else None,
            "min": min(values) if values else None,
            "max": max(values) if values else None,
        }

    return {
        "runs": len(runs),
        "succeeded": sum(r["ok"] for r in runs),
        "paths": sorted({str(r["path"]) for r in runs}),
        "fault_to_switched_s": spread("fault_to_switched_s"),
        "webhook_to_switched_s": spread("webhook_to_switched_s"),
        "kill_to_first_ack_s": spread("kill_to_first_ack_s"),
        "acknowledged": sum(r["acknowledged"] for r in runs),
        "lost": sum(r["lost"] for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="kills per mode (default 1; each redeploys, ~2 min)")
    parser.add_argument("--modes", default="none,bounded", help="policy.replication.data_loss values to run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if args.runs < 1 or not modes or set(modes) - {"none", "bounded"}:
        parser.error("--runs at least 1, --modes a comma-separated subset of none,bounded")
    paths = lab.lab_paths(ROOT)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    runs: list[dict[str, Any]] = []
    with lab_lock():
        try:
            lab.up(paths)
            for mode in modes:
                for _ in range(args.runs):
                    with tempfile.TemporaryDirectory(prefix="depmirror-pg-failover-") as workdir:
                        runs.append(one_run(paths, Path(workdir), mode))
                    print(json.dumps(runs[-1]), flush=True)
        finally:
            lab.restore(paths)
            lab.down(paths)
    report = {
        "started": started,
        "machine": {"cores": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "settings": {
            "path": "the runner's fast path (depmirror serve, act mode)",
            "trigger": "the alert: blackbox -> Prometheus -> Alertmanager -> runner, every 1 s, health.samples 1",
            "postgresql_max_lag_bytes": 0,
        },
        "by_mode": {mode: summary_of([r for r in runs if r["data_loss"] == mode]) for mode in modes},
        "runs_detail": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["by_mode"], indent=2))
    return 0 if all(r["ok"] for r in runs) and report["by_mode"].get("none", {}).get("lost", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
