"""The lab's PostgreSQL variant watched as a fleet's would be, and its primary killed under an INSERT load.

Shared by tests/e2e/test_postgres_runner_lab.py and bench/postgres_failover.py. The deployment is the one
tests/integration/postgres_fleet.py makes for rollback.yml (inventories/lab-postgres, adjust.yml with the
same mirror variables), with every instance's `health.samples` at 1 as bench/failover.py runs its faults;
the watchers are the lab's (depmirror_lab.watch: blackbox, Prometheus and Alertmanager every second, and
`depmirror serve` in act mode with the fast path on). Nothing but the alert starts the switchover. The
caller holds the lab (its lock and `lab.up`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import depmirror_lab as lab
from depmirror_lab import failover, watch
from tests.integration.ansible_run import ROOT
from tests.integration.health_services import processes
from tests.integration.postgres_fleet import DEPENDENCY, WriteLoad, deploy_variant, kill_primary, variant_graph
from tests.integration.rollback_fleet import Fleet, lb_address

from depmirror.store import Event, EventFilter, open_store

# The fault -> decision bound the test allows (the alert path plus the fast path take about 2 s; generous
# on a loaded 2-core machine). bench/postgres_failover.py measures it.
SWITCHED_WITHIN_S = 30.0


@dataclass
class Watched:
    world: Fleet  # the deployment, as tests/integration's helpers read it (ssh, applied plan, store)
    watch: watch.Watch


@dataclass
class KillRun:
    failed: str
    address: str  # the load balancer's
    port: int
    load: WriteLoad
    killed_at: float  # the VM's clock right after the kill
    events: list[Event]  # rollback and refused events of the dependency since the kill

    def acked_after_kill(self) -> list[float]:
        return [t for t in self.load.ack_times if t > self.killed_at]


@contextlib.contextmanager
def watched_postgres(paths: lab.LabPaths, workdir: Path, data_loss: str) -> Iterator[Watched]:
    """From an empty lab: the variant deployed by adjust.yml, then the lab's watchers on it, all healthy."""
    # An alert on the first failed probe (docs/performance.md: the lab's fast settings).
    deployed = deploy_variant(paths, variant_graph(workdir, data_loss, samples=1), workdir)
    graph, graph_file, store, inventories = deployed.graph, deployed.graph_file, deployed.store, deployed.inventories
    settings = watch.WatchSettings(
        graph=graph_file, store=store, inventories=tuple(inventories), collection=ROOT, cooldown_s=3.0
    )
    watched = watch.start(paths, settings)
    try:
        failover.wait_healthy(watched, timeout_s=120)
        with processes(workdir) as procs:
            yield Watched(Fleet(paths, graph, store, inventories, watched.prometheus_url, procs, workdir), watched)
    finally:
        watch.stop(paths)
        lab.restore(paths)


def _events_since(store: str, since: float) -> list[Event]:
    with open_store(store) as opened:
        return opened.events(
            EventFilter(dependency=DEPENDENCY, kinds=("rollback", "refused"), since=datetime.fromtimestamp(since, UTC))
        )


def kill_under_load(world: Fleet, load_s: float = 2.0, after_s: float = 2.0) -> KillRun:
    """INSERTs through the LB for `load_s`, the primary SIGKILLed (kept down), then the load goes on until
    the runner has decided (at most SWITCHED_WITHIN_S) and `after_s` more, so the new primary's
    acknowledgements are seen."""
    item = world.applied(DEPENDENCY)
    failed, port = item["primary"]["host"], int(item["port"])
    address = lb_address(world.graph)
    load = WriteLoad(address, port)
    load.prepare()
    load.start()
    events: list[Event] = []
    try:
        time.sleep(load_s)
        killed_at = kill_primary(world, failed)
        deadline = time.monotonic() + SWITCHED_WITHIN_S
        while time.monotonic() < deadline and not events:
            time.sleep(0.2)
            events = _events_since(world.store, killed_at - 0.5)
        time.sleep(after_s)
    finally:
        load.stop()
    # Any event after the first: a second decision for the same fault would show here.
    return KillRun(failed, address, port, load, killed_at, _events_since(world.store, killed_at - 0.5))


def summary(run: KillRun) -> dict[str, Any]:
    """The figures of one kill (bench/postgres_failover.py's row; the test prints it)."""
    event = run.events[0] if run.events else None
    details = event.details if event else {}
    after = run.acked_after_kill()
    received = (event.trigger or {}).get("received_at") if event else None  # ISO 8601, as the runner writes it
    webhook_at = datetime.fromisoformat(str(received)).timestamp() if received else None
    switched_at = details.get("switched_at")
    return {
        "failed": run.failed,
        "event": f"{event.kind}/{event.outcome}" if event else "none",
        "path": details.get("path"),
        "target": event.target if event else None,
        "fault_to_switched_s": round(switched_at - run.killed_at, 3) if switched_at else None,
        "webhook_to_switched_s": round(switched_at - webhook_at, 3) if switched_at and webhook_at else None,
        "kill_to_first_ack_s": round(after[0] - run.killed_at, 3) if after else None,
        "fenced_first": details.get("fenced_first"),
        "timings": details.get("timings", {}),
        "acknowledged": len(run.load.acked),
        "acknowledged_after_kill": len(after),
        "client_errors": len(run.load.errors),
        "events": len(run.events),
    }
