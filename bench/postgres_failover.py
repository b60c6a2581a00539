"""PostgreSQL failover on the lab: kill the primary under an INSERT load, switch with rollback.yml, measure.

Each run deploys the lab's PostgreSQL variant afresh (inventories/lab-postgres: a primary and two streaming
standbys, one per zone, nginx stream on lb1), starts one client that INSERTs through lb1 in a loop (one
row per transaction, 50 ms pause after an error), SIGKILLs the primary's server (its unit stopped so
systemd keeps it down), and runs rollback.yml at once (no alert: the alert path adds its own ~1 s,
docs/performance.md). Figures per run:
- kill -> switched: from the kill to the first INSERT acknowledged again through lb1 (by the new primary);
- rollback.yml: the playbook's wall time;
- acknowledged INSERTs, and how many of them are not readable afterwards (synchronous: must be 0).

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
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the lab test helpers (tests/integration) deploy and drive the variant

import depmirror_lab as lab  # noqa: E402
from tests.integration.postgres_fleet import (  # noqa: E402
    DEPENDENCY,
    WriteLoad,
    kill_primary,
    postgres_fleet,
    readable,
)
from tests.integration.rollback_fleet import lb_address  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from failover import lab_lock  # noqa: E402  (takes the lab lock, or re-locks the one `flock` handed down)

RESULTS = ROOT / "bench" / "results" / "postgres_failover.json"


def one_run(paths: lab.LabPaths, workdir: Path, data_loss: str) -> dict[str, Any]:
    with postgres_fleet(workdir, paths, data_loss) as world:
        item = world.applied(DEPENDENCY)
        failed, port = item["primary"]["host"], int(item["port"])
        address = lb_address(world.graph)
        load = WriteLoad(address, port)
        load.prepare()
        load.start()
        try:
            time.sleep(2.0)
            killed_at = kill_primary(world, failed)
            done, seconds = world.run(
                "rollback.yml",
                depmirror_dependency=DEPENDENCY,
                depmirror_failed_instance=f"{DEPENDENCY}@{failed}",
                depmirror_trigger={"type": "bench", "fingerprint": "postgres-kill"},
            )
            time.sleep(2.0)
        finally:
            load.stop()
        after = [t for t in load.ack_times if t > killed_at]
        acked = sorted(load.acked)
        lost = sorted(set(acked) - readable(address, port, acked)) if done.rc == 0 else acked
        return {
            "data_loss": data_loss,
            "ok": done.rc == 0,
            "failed": failed,
            "target": world.primary(DEPENDENCY),
            "kill_to_switched_s": round(after[0] - killed_at, 3) if after else None,
            "rollback_playbook_s": round(seconds, 3),
            "acknowledged": len(acked),
            "lost": len(lost),
            "client_errors": len(load.errors),
            "error": "" if done.rc == 0 else (done.messages() or done.stderr[-500:]),
        }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    switched = [r["kill_to_switched_s"] for r in runs if r["kill_to_switched_s"] is not None]
    playbook = [r["rollback_playbook_s"] for r in runs]
    return {
        "runs": len(runs),
        "succeeded": sum(r["ok"] for r in runs),
        "kill_to_switched_s": {
            "median": round(statistics.median(switched), 3) if switched else None,
            "max": max(switched) if switched else None,
        },
        "rollback_playbook_s": {"median": round(statistics.median(playbook), 3) if playbook else None},
        "acknowledged": sum(r["acknowledged"] for r in runs),
        "lost": sum(r["lost"] for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="kills per mode (default 3; each redeploys, ~1 min)")
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
        "settings": {"path": "rollback.yml", "max_lag_bytes": 0, "trigger": "rollback.yml started at the kill"},
        "by_mode": {mode: summary([r for r in runs if r["data_loss"] == mode]) for mode in modes},
        "runs_detail": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["by_mode"], indent=2))
    return 0 if all(r["ok"] for r in runs) and report["by_mode"].get("none", {}).get("lost", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
