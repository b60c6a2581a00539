"""Zone batch: one zone's primaries (about 333 of 1,000 dependencies) switched as one batch, then one at a time.

No lab: a real nginx on loopback is the load balancer (tests/local_nginx.py: the collection's nginx_swap runs
against it as it would over SSH), another nginx serves every instance outside the dead zone, and a SQLite
store holds the applied plan as adjust.yml records it. Health is given (the dead zone failing, the rest
healthy) instead of asked of Prometheus: this measures decide + route + verify + record, not a PromQL query.
Both runs start from the same store and the same nginx configuration; the one-at-a-time run is the same code
with batches of one (what the runner did before batching). Prints and writes bench/results/zone_batch.json.
Targets: batch_s <= 2.0, speedup >= 20.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.local_nginx import (  # noqa: E402
    Backends,
    Fleet,
    LocalLoadBalancer,
    loopback_fleet,
    options_for,
    serve_first_release,
)

from depmirror.rollback.switchover import FastPath, FastPathConfig, Switch  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "zone_batch.json"
DEAD_ZONE = "zone-a"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dependencies", type=int, default=1000)
    parser.add_argument(
        "--serial-limit",
        type=int,
        default=0,
        help="switch only this many one at a time and scale up (0: all of them, the default)",
    )
    return parser.parse_args()


def _fast_path(fleet: Fleet, lb_root: Path) -> tuple[FastPath, LocalLoadBalancer]:
    lb = LocalLoadBalancer(lb_root)
    config = FastPathConfig(
        graph=fleet.graph_path, collection=ROOT, nginx=options_for(lb_root), verify_requests=2, verify_deadline_s=3.0
    )
    return FastPath(config, transport=lb, health=fleet.health_without(DEAD_ZONE)), lb


def _run(fleet: Fleet, work: Path, label: str, *, one_at_a_time: bool, limit: int = 0) -> dict[str, Any]:
    fast, lb = _fast_path(fleet, work / f"lb-{label}")
    serve_first_release(fast, lb=lb, fleet=fleet)
    switches = [Switch(d["name"], d["primary"]["host"], fleet.store_url) for d in fleet.primaries_in(DEAD_ZONE)]
    try:
        began = time.monotonic()
        timings: dict[str, float] = {}
        if not one_at_a_time:
            done = fast.switch_batch(switches)
            outcomes, timings = done.outcomes, done.timings
        else:
            chosen = switches[:limit] if limit else switches
            outcomes = [o for switch in chosen for o in fast.switch_batch([switch]).outcomes]
        seconds = time.monotonic() - began
        reloads = lb.reloads()
    finally:
        fast.close()
        lb.stop()
    statuses = [o.status for o in outcomes]
    return {
        "seconds": seconds,
        "switched": statuses.count("succeeded"),
        "attempted": len(outcomes),
        "not_switched": {o.dependency: str(o.error) for o in outcomes if o.status != "succeeded"},
        "reloads": reloads,
        "phases_s": timings,
        "scaled_from": len(outcomes) if limit else None,
        "of": len(switches),
    }


def main() -> int:
    args = _arguments()
    work = Path(tempfile.mkdtemp(prefix="zone-batch-"))
    built = time.monotonic()
    fleet = loopback_fleet(work, args.dependencies)
    database = Path(fleet.store_url.removeprefix("sqlite:///"))
    pristine = work / "pristine.db"
    shutil.copyfile(database, pristine)
    backends = Backends(work / "backends", fleet.listens(except_zone=DEAD_ZONE))
    backends.start()
    print(f"fleet of {args.dependencies} built and served in {time.monotonic() - built:.1f} s", flush=True)
    try:
        batch = _run(fleet, work, "batch", one_at_a_time=False)
        print(f"batch: {batch['switched']}/{batch['of']} in {batch['seconds']:.2f} s, {batch['reloads']} reload(s)")
        shutil.copyfile(pristine, database)  # the same input for the one-at-a-time run
        serial = _run(fleet, work, "serial", one_at_a_time=True, limit=args.serial_limit)
        serial_s = serial["seconds"] * (serial["of"] / serial["attempted"]) if args.serial_limit else serial["seconds"]
        print(f"one at a time: {serial['switched']}/{serial['attempted']} in {serial['seconds']:.2f} s")
    finally:
        backends.stop()
    result = {
        "dependencies": args.dependencies,
        "dependencies_shifted": batch["switched"],
        "primaries_in_zone": batch["of"],
        "batch_s": round(batch["seconds"], 3),
        "serial_s": round(serial_s, 3),
        "serial_scaled_from": serial["scaled_from"],
        "speedup": round(serial_s / batch["seconds"], 1),
        "batch_phases_s": batch["phases_s"],
        "reloads_batch": batch["reloads"],
        "reloads_serial": serial["reloads"],
        "not_switched_batch": batch["not_switched"],
        "not_switched_serial": serial["not_switched"],
        "targets": {"batch_s": 2.0, "speedup": 20},
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("dependencies_shifted", "batch_s", "serial_s", "speedup")}))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if result["batch_s"] <= 2.0 and result["speedup"] >= 20 else 1


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
