"""Faults on one instance of a dependency, a client through the load balancer, and the wait for the switch:
what `make demo`, tests/e2e and bench/failover.py do to the lab's fleet.

- kill: SIGKILL of the instance's process, kept down (a runtime drop-in sets Restart=no, as for a crash that
  would only crash again);
- hang: SIGSTOP of the process: connections open and nothing answers;
- cut: the instance's VM loses its cable (`depmirror lab fault cut`).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from depmirror.fleet.applied import plan_of
from depmirror.graph.load import load_graph
from depmirror.health.evaluate import fetch_health
from depmirror.store import Event, EventFilter, open_store
from depmirror_lab import chain, faults, machine
from depmirror_lab.paths import LabPaths
from depmirror_lab.shape import HOSTS
from depmirror_lab.shape import host as lab_host
from depmirror_lab.system import LabError
from depmirror_lab.watch import Watch, WatchSettings
from depmirror_lab.watch import start as start_watch

KINDS = ("kill", "hang", "cut")
# Issue 10's target for fault -> switched at p99: a fault over it is "slow" and its chain is kept.
SLOW_S = 3.0
# After the wait for a decision ran out: how long to keep looking for a late one (it says what broke).
LATE_S = 20.0
STABLE_S = 3.0
# Prometheus applies a re-label within 5 s (its discovery update rate) plus one scrape interval.
RELABEL_WAIT_S = 15.0
# The fast path's fence: two SSH connects (2 s each) and a 3 s command, with a margin.
FENCE_WINDOW_S = 10.0
DROP_IN = "/run/systemd/system/depmirror-{dependency}.service.d/depmirror-fault.conf"


@dataclass(frozen=True)
class Fleet:
    graph: Path
    store: str
    inventories: tuple[Path, ...]


def deploy(paths: LabPaths, collection: Path, workdir: Path, graph: Path, samples: int | None = 1) -> Fleet:
    """The graph's fleet on the lab with its own store (playbooks/adjust.yml). `samples` overrides every
    dependency's `health.samples` (1: an alert fires on the first failed probe; docs/performance.md)."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(graph.read_text(encoding="utf-8"))
    if samples is not None:
        for dependency in data["dependencies"].values():
            dependency.setdefault("health", {})["samples"] = samples
    fleet_graph = workdir / "graph.yml"
    fleet_graph.write_text(yaml.safe_dump(data, sort_keys=False))
    store = f"sqlite:///{(workdir / 'state.db').resolve()}"
    source = workdir / "fleet.depmirror.yml"
    source.write_text(
        yaml.safe_dump(
            {"plugin": "depmirror.mirroring.graph", "graph": str(fleet_graph.resolve()), "state_store": store}
        )
    )
    fleet = Fleet(fleet_graph, store, (paths.inventory, source))
    _ansible_playbook(collection, "playbooks/adjust.yml", fleet.inventories, {}, timeout_s=900)
    return fleet


def _ansible_playbook(
    collection: Path, playbook: str, inventories: Sequence[Path | str], variables: dict[str, Any], timeout_s: float
) -> str:
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), playbook]
    for inventory in inventories:
        argv += ["-i", str(inventory)]
    if variables:
        argv += ["-e", json.dumps(variables)]
    env = {**os.environ, "ANSIBLE_CONFIG": str(collection / "ansible.cfg")}
    done = subprocess.run(argv, cwd=collection, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    if done.returncode != 0:
        raise LabError(f"{playbook} failed (rc {done.returncode}): {done.stdout[-3000:]}{done.stderr[-1000:]}")
    return done.stdout


def ssh(paths: LabPaths, host: str, command: str, timeout_s: float = 20.0) -> subprocess.CompletedProcess[str]:
    try:
        address = lab_host(host).address
    except KeyError:
        raise LabError(f"{host} is not a lab host (one of: {', '.join(h.name for h in HOSTS)})") from None
    argv = [
        "ssh",
        "-i",
        str(paths.ssh_key),
        "-o",
        f"UserKnownHostsFile={paths.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=3",
        f"root@{address}",
        command,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)


def _must(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        raise LabError(f"{what} failed (rc {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


def prepare(paths: LabPaths, kind: str, dependency: str, host: str) -> None:
    """What must be in place before the fault, so that injecting it is one quick step."""
    if kind not in KINDS:
        raise LabError(f"unknown fault {kind!r} (one of: {', '.join(KINDS)})")
    if kind == "kill":
        drop_in = DROP_IN.format(dependency=dependency)
        _must(
            ssh(
                paths,
                host,
                f"mkdir -p $(dirname {drop_in}) && printf '[Service]\\nRestart=no\\n' > {drop_in}"
                " && systemctl daemon-reload",
            ),
            f"keeping {dependency} down on {host}",
        )


def inject(paths: LabPaths, kind: str, dependency: str, host: str) -> float:
    """Apply the fault; the wall-clock time (epoch seconds) at which it took effect."""
    unit = f"depmirror-{dependency}.service"
    if kind == "cut":
        faults.fault(paths, "cut", host)
        return time.time()
    signal = "KILL" if kind == "kill" else "STOP"
    done = ssh(paths, host, f"systemctl kill --signal=SIG{signal} {unit} && date +%s.%N")
    _must(done, f"SIG{signal} to {unit} on {host}")
    return float(done.stdout.strip().splitlines()[-1])


def repair(paths: LabPaths, kind: str, dependency: str, host: str) -> None:
    """Undo the fault; the instance runs again (still fenced out of routing until failback)."""
    unit = f"depmirror-{dependency}.service"
    if kind == "cut":
        faults.restore(paths, host)
    elif kind == "hang":
        # The fence may have stopped the unit already (systemd follows SIGTERM with SIGCONT): then it is gone.
        ssh(paths, host, f"systemctl kill --signal=SIGCONT {unit}")
    if kind == "kill":
        drop_in = DROP_IN.format(dependency=dependency)
        _must(ssh(paths, host, f"rm -f {drop_in} && systemctl daemon-reload"), f"removing the drop-in on {host}")
    # The fence may have stopped and disabled it; failback starts it again, not this.


def failback(
    watch: Watch,
    collection: Path,
    dependency: str,
    host: str,
    timeout_s: float = 300.0,
    relabel_wait_s: float = RELABEL_WAIT_S,
) -> float:
    """Bring a repaired instance back as a mirror with playbooks/failback.yml (no hold: the lab is no fleet),
    then re-label the probes, so that the next fault of the new primary raises DepmirrorPrimaryDown, and wait
    (up to relabel_wait_s; 0: not at all) until Prometheus probes with the new labels. Returns that wait."""
    variables = {
        "depmirror_dependency": dependency,
        "depmirror_recovered_instance": host,
        "depmirror_store": watch.store,
        "depmirror_prometheus_url": watch.prometheus_url,
        "rollback_health_interval": 1.0,
        "rollback_failback_hold_seconds": 0,
        "depmirror_trigger": {"type": "lab", "reason": "repaired after a fault"},
    }
    _ansible_playbook(collection, "playbooks/failback.yml", watch.inventories, variables, timeout_s)
    began = time.monotonic()
    watch.refresh_targets(wait_s=relabel_wait_s)
    return round(time.monotonic() - began, 3)


def wait_event(store_url: str, dependency: str, kinds: tuple[str, ...], since: float, timeout_s: float) -> Event | None:
    """The first event of those kinds for the dependency recorded after `since` (epoch seconds), or None
    when none came within timeout_s: the caller reports what happened instead of stopping."""
    after = datetime.fromtimestamp(since, UTC)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open_store(store_url) as store:
            found = store.events(EventFilter(dependency=dependency, kinds=kinds, since=after))
        if found:
            return min(found, key=lambda e: e.time)
        time.sleep(0.1)
    return None


@dataclass
class ClientLoop:
    """Requests through the load balancer, one after another, bounded in count and time; every failure counted.
    HTTP: GET / answered 200; redis: PING answered +PONG; tcp: a line echoed back."""

    address: str
    port: int
    kind: str = "http"
    max_requests: int = 20_000
    max_seconds: float = 120.0
    timeout_s: float = 10.0
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ClientLoop:
        self._thread = threading.Thread(target=self._run, name="client-loop", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 1)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and self.sent < self.max_requests and time.monotonic() < deadline:
            self.sent += 1
            try:
                problem = self._http() if self.kind == "http" else self._line()
            except (OSError, http.client.HTTPException) as error:
                problem = f"{type(error).__name__}: {error}"
            if problem:
                self.errors.append(problem)
            time.sleep(0.01)

    def _http(self) -> str:
        connection = http.client.HTTPConnection(self.address, self.port, timeout=self.timeout_s)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            response.read()
            return "" if response.status == 200 else f"HTTP {response.status}"
        finally:
            connection.close()

    def _line(self) -> str:
        sent, expected = (b"PING\r\n", b"+PONG") if self.kind == "redis" else (b"depmirror\n", b"depmirror\n")
        with socket.create_connection((self.address, self.port), timeout=self.timeout_s) as conn:
            conn.sendall(sent)
            answer = conn.recv(64)
        return "" if answer.startswith(expected) else f"answered {answer[:32]!r}"


@dataclass
class FaultResult:
    kind: str
    dependency: str
    failed: str
    fault_at: float
    event_kind: str
    outcome: str
    target: str | None
    switched_at: float | None
    webhook_at: float | None
    requests: int
    client_errors: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    # Each step of the chain (lab/src/depmirror_lab/chain.py); with logs and samples when failed or slow.
    chain: dict[str, Any] = field(default_factory=dict)
    # The machine when the fault was injected, and the share of both cores busy until the decision.
    load: dict[str, float | int] = field(default_factory=dict)
    cpu_busy: float | None = None
    # The repair and failback.yml that followed (or why they failed).
    failback: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def failed_fault(self) -> bool:
        """Nothing switched: no decision, a refusal, a suppression, a failed switchover, or an error."""
        return self.outcome != "succeeded" or self.switched_at is None

    @property
    def slow(self) -> bool:
        return not self.failed_fault and (self.fault_to_switched_s or 0.0) > SLOW_S

    @property
    def fault_to_switched_s(self) -> float | None:
        return None if self.switched_at is None else round(self.switched_at - self.fault_at, 3)

    @property
    def webhook_to_switched_s(self) -> float | None:
        if self.switched_at is None or self.webhook_at is None:
            return None
        return round(self.switched_at - self.webhook_at, 3)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "client_errors"}
        return {
            **data,
            "client_errors": len(self.client_errors),
            "client_error_samples": self.client_errors[:5],
            "fault_to_switched_s": self.fault_to_switched_s,
            "webhook_to_switched_s": self.webhook_to_switched_s,
        }


def current_primary(store_url: str, dependency: str) -> str:
    with open_store(store_url) as store:
        primary = store.primary(dependency)
        plan = plan_of(store.applied_plan())
    if primary:
        return primary
    for item in plan.get("dependencies") or []:
        for instance in item["instances"] if item["name"] == dependency else []:
            if instance["role"] == "primary":
                return str(instance["host"])
    raise LabError(f"{dependency} has no primary in {store_url} (fix: run playbooks/adjust.yml first)")


def fault_and_wait(
    paths: LabPaths,
    watch: Watch,
    kind: str,
    dependency: str,
    lb: tuple[str, int],
    timeout_s: float = 30.0,
    settle_s: float = 1.0,
) -> FaultResult:
    """Fault the primary with a client loop running through the LB; wait for the runner's decision.

    A fault that nothing switched (or switched over SLOW_S) comes back with its chain and evidence, never as
    an exception: one bad fault must not cost the figures of the others."""
    primary = current_primary(watch.store, dependency)
    prepare(paths, kind, dependency, primary)
    protocol = load_graph(watch.graph).dependencies[dependency].kind
    before = machine.load()
    meter = machine.CpuMeter()
    with ClientLoop(lb[0], lb[1], kind=protocol, max_seconds=timeout_s + 10) as loop:
        time.sleep(0.5)
        meter.start()
        fault_at = inject(paths, kind, dependency, primary)
        event = wait_event(
            watch.store, dependency, ("rollback", "refused", "alert_suppressed"), fault_at - 0.2, timeout_s
        )
        busy = meter.busy()
        time.sleep(settle_s)  # the client keeps asking after the switch: errors then count too
    if event is None:
        # Late is still an answer: it says which step was slow rather than which one never happened.
        event = wait_event(watch.store, dependency, ("rollback", "refused", "alert_suppressed"), fault_at - 0.2, LATE_S)
    details = event.details if event else {}
    received = event.trigger.get("received_at") if event else None
    result = FaultResult(
        kind=kind,
        dependency=dependency,
        failed=primary,
        fault_at=fault_at,
        event_kind=event.kind if event else "none",
        outcome=event.outcome if event else f"no decision within {timeout_s + LATE_S:.0f}s",
        target=event.target if event else None,
        switched_at=details.get("switched_at"),
        webhook_at=datetime.fromisoformat(received).timestamp() if received else None,
        requests=loop.sent,
        client_errors=list(loop.errors),
        timings=details.get("timings", {}),
        load=before,
        cpu_busy=busy,
    )
    result.chain = chain.collect(
        prometheus_url=watch.prometheus_url,
        store_url=watch.store,
        logs=watch.dir / "logs",
        dependency=dependency,
        host=primary,
        fault_at=fault_at,
        until=time.time(),
        evidence=result.failed_fault or result.slow,
    )
    return result


def recover(
    paths: LabPaths,
    watch: Watch,
    collection: Path,
    kind: str,
    dependency: str,
    host: str,
    timeout_s: float = 60.0,
    switched_at: float | None = None,
    relabel_wait_s: float = RELABEL_WAIT_S,
) -> dict[str, Any]:
    """Undo the fault, start the instance again, wait until Prometheus sees it healthy, fail it back (unless
    it is still the primary: nothing switched). Returns what it did and when (seconds after it began).

    The runner fences the failed instance in the background after a switch; a host whose cable comes back
    before the fence has given up gets its instance stopped then, so a cut waits the fence's window out. A
    killed or hung instance's host answers: the fence is over once its unit is disabled.
    """
    began = time.time()
    done: dict[str, Any] = {}
    if switched_at is not None:
        _wait_fenced(paths, kind, dependency, host, switched_at + FENCE_WINDOW_S)
        done["fence_waited_s"] = round(time.time() - began, 3)
    repair(paths, kind, dependency, host)
    _must(
        ssh(paths, host, f"systemctl start depmirror-{dependency}.service", timeout_s=timeout_s),
        f"starting {dependency} on {host}",
    )
    wait_healthy(watch, {(dependency, host)}, timeout_s)
    done["healthy_after_s"] = round(time.time() - began, 3)
    if current_primary(watch.store, dependency) == host:
        done["failback"] = "none: still the primary"
        watch.refresh_targets(wait_s=relabel_wait_s)
        return done
    try:
        done["relabel_applied_after_s"] = failback(watch, collection, dependency, host, relabel_wait_s=relabel_wait_s)
    except LabError as error:
        # A restored cable can drop a probe or two while neighbours relearn it: one more try, later.
        done["first_failback_error"] = str(error)[-600:]
        time.sleep(STABLE_S)
        wait_healthy(watch, {(dependency, host)}, timeout_s)
        done["relabel_applied_after_s"] = failback(watch, collection, dependency, host, relabel_wait_s=relabel_wait_s)
    done["failback"] = "failback.yml succeeded"
    done["failed_back_after_s"] = round(time.time() - began, 3)
    return done


def _wait_fenced(paths: LabPaths, kind: str, dependency: str, host: str, deadline: float) -> None:
    """Until the fast path's background fence is over on the host (or its window has passed)."""
    unit = f"depmirror-{dependency}.service"
    while kind != "cut" and time.time() < deadline:
        done = ssh(paths, host, f"systemctl is-enabled {unit}", timeout_s=5.0)
        if done.stdout.strip() == "disabled":
            return
        time.sleep(0.5)
    time.sleep(max(0.0, deadline - time.time()))


def watch_fleet(paths: LabPaths, fleet: Fleet, collection: Path, *, healthy_within_s: float, **settings: Any) -> Watch:
    """The lab's watchers (Prometheus, Alertmanager, the runner) on a deployed fleet, returned once every
    instance is judged healthy; `settings`: WatchSettings' other fields. The caller stops the watch (also when
    this raises)."""
    watched = start_watch(
        paths,
        WatchSettings(
            graph=fleet.graph, store=fleet.store, inventories=fleet.inventories, collection=collection, **settings
        ),
    )
    wait_healthy(watched, timeout_s=healthy_within_s)
    return watched


def wait_healthy(watch: Watch, instances: set[tuple[str, str]] | None = None, timeout_s: float = 60.0) -> None:
    """Until Prometheus has judged every (dependency, host) healthy for STABLE_S seconds in a row (default:
    every instance the watch probes), so that a fault that follows starts from a settled state."""
    graph = load_graph(watch.graph)
    wanted = instances or {(d, h) for d, h, _ in watch.instances}
    dependencies = {d for d, _ in wanted}
    deadline = time.monotonic() + timeout_s
    stable_since: float | None = None
    while time.monotonic() < deadline:
        report = fetch_health(graph, watch.prometheus_url, None, timeout=2, interval=1.0, dependencies=dependencies)
        healthy = {(v.dependency, v.host) for v in report.verdicts if v.state == "healthy"}
        if wanted <= healthy:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= STABLE_S:
                return
        else:
            stable_since = None
        time.sleep(0.5)
    raise LabError(f"not every instance of {sorted(wanted)} was healthy in Prometheus within {timeout_s:.0f}s")
