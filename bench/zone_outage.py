"""A whole zone cut on the lab, again and again, with clients looping through lb1 (issue 16, "Must show").

A graph of --dependencies lightweight dependencies (bench/_zone_fleet.py: 6 active-active HTTP ones and 2
Redis ones for the clients, HTTP/TCP echo fillers at RF 2; the lab VMs' capacity raised to hold them) is
deployed with the pyinfra frontend (`depmirror pyinfra adjust`), with its own store; then the lab's watchers
start (Prometheus scraping and evaluating every second, Alertmanager with group_wait 0 s, `depmirror serve`
on the fast path). Each outage, zones in turn (a, b, c, a, ...): 6 HTTP client loops through lb1 and 2
Redis writers (SET + `WAIT 1`) run; every VM of the zone is cut (as tests/e2e/test_zone_outage.py does);
the bench waits until every dependency whose primary ran there has its event and then QUIET_S more; then
repairs the zone (after the fast path's fence window), waits until every instance is healthy, ends the
zone's shift if the zone alert started one, and fails every switched dependency back in ONE failback.yml
run (`depmirror_dependencies`: one nginx pass), then re-labels the probes.

Writes bench/results/zone_outage.json: outages, affected_dependencies, fault_to_first_switched_p50_s,
fault_to_last_switched_p50_s / p99_s, reloads_per_lb_per_outage_max (distinct releases the outage's
switchover events name per LB; lb1's nginx log count alongside), events_per_affected_dependency (rollback or
refused events per affected dependency: 1.0; the zone alert's own `zonal_shift` event, or its `refused`
one, names the zone with dependency "-": it is the zone's, reported per outage under `zone_shift`, never a
dependency's event), unaffected_touched, client_errors_active_active,
redis_acked_writes_lost; per outage the batches, the alert arrivals at the runner, and the chain of each
affected dependency (lab/src/depmirror_lab/chain.py; with evidence for the last one switched).

Needs root and the lab; bounded (--max-minutes, per-step timeouts); leaves the lab down, also on failure:
`flock /tmp/depmirror-lab.lock .venv/bin/python bench/zone_outage.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import depmirror_lab as lab
import yaml
from depmirror_lab import chain, failover, machine, watch
from depmirror_lab.writes import AckedWrites

import _zone_fleet as zf
from depmirror.fleet.applied import plan_of
from depmirror.fleet.zonal_shift_service import end_shift
from depmirror.rollback.switchover import FENCE_THREADS
from depmirror.runner.zones import ZONE_INSTANCE_PREFIX
from depmirror.store import EventFilter, open_store
from failover import lab_lock

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "zone_outage.json"
LB = "198.18.0.2"
SWITCH_TIMEOUT_S = 30.0
# The dependency a zone's own events (zonal_shift, zonal_shift_end, a refused shift) are recorded under.
ZONE_EVENT_DEPENDENCY = "-"
# A shift's queue items carry `zonal_shift:<zone>:<dependency>:<start>` (fleet.zonal_shift.shift_fingerprint).
SHIFT_FINGERPRINT_PREFIX = "zonal_shift:"
# After every affected dependency has its event: resends and re-evaluations must add none.
QUIET_S = 6.0
# (dispatch_window_seconds, dispatch_window_max_seconds) the measured alert arrivals are replayed through.
GATHER_SETTINGS = ((0.2, 0.2), (0.1, 0.5), (0.2, 0.5), (0.2, 1.0), (0.3, 1.0), (0.3, 1.5), (0.5, 2.0))
TARGETS = {"fault_to_last_switched_p50_s": 3.0, "fault_to_last_switched_p99_s": 4.0, "reloads_per_lb_per_outage": 2}


def deploy(paths: lab.LabPaths, workdir: Path, dependencies: int, zone_samples: int) -> failover.Fleet:
    """The bench's graph on a wiped lab with its own store, through the pyinfra frontend."""
    graph = workdir / "graph.yml"
    graph.write_text(zf.dump(zf.zone_graph(dependencies, zone_samples=zone_samples)))
    store = f"sqlite:///{(workdir / 'state.db').resolve()}"
    source = workdir / "fleet.depmirror.yml"
    source.write_text(
        yaml.safe_dump({"plugin": "depmirror.mirroring.graph", "graph": str(graph), "state_store": store})
    )
    failover._ansible_playbook(ROOT, "tests/integration/playbooks/wipe.yml", [paths.inventory], {}, timeout_s=600)
    argv = [sys.executable, "-m", "depmirror.cli", "pyinfra", "adjust", "-i", str(source), "--json"]
    argv += ["--ssh-key", str(paths.ssh_key), "--known-hosts", str(paths.known_hosts)]
    began = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=False)
    if done.returncode != 0:
        raise lab.LabError(f"depmirror pyinfra adjust failed (rc {done.returncode}): {done.stderr[-3000:]}")
    print(f"deployed {dependencies} dependencies with pyinfra in {time.monotonic() - began:.1f} s", flush=True)
    return failover.Fleet(graph, store, (paths.inventory, source))


def routed(store_url: str) -> dict[str, dict[str, Any]]:
    """What lb1 routes now: each dependency's instances and its primary (the store's, else the plan's)."""
    with open_store(store_url) as store:
        items = {item["name"]: item for item in plan_of(store.applied_plan()).get("dependencies") or []}
        primaries = store.primaries()
    for name, item in items.items():
        item["_primary"] = primaries.get(name) or (item.get("primary") or {}).get("host")
    return items


def events_since(store_url: str, since: float, kinds: tuple[str, ...]) -> list[Any]:
    with open_store(store_url) as store:
        return store.events(EventFilter(kinds=kinds, since=datetime.fromtimestamp(since, UTC), limit=10_000))


def arrivals(store_url: str, hosts: dict[str, str], since: float) -> list[dict[str, Any]]:
    """The firing alerts the runner received for each (dependency, failed host) since `since`: when, and
    under which alert (the dispatch window's input: how far apart a zone's alerts reach the runner)."""
    found = [
        {"dependency": name, "alertname": row["alertname"], "received_s": round(row["received_at"] - since, 3)}
        for name, host in hosts.items()
        for row in chain.queued_alerts(store_url, name, host, since)
        if row["status"] == "firing"
    ]
    return sorted(found, key=lambda row: row["received_s"])


def nginx_reloads(paths: lab.LabPaths, since: float, until: float) -> int | None:
    """nginx reloads on lb1 within [since, until], from its systemd journal (the swap reloads with
    `systemctl reload-or-restart`): the ground truth beside the releases the events name. None: unreadable."""
    done = failover.ssh(
        paths,
        "lb1",
        f"journalctl -u nginx.service --since=@{int(since)} --until=@{int(until) + 1} -o short-unix --no-pager",
    )
    if done.returncode != 0:
        return None
    count = 0
    for line in done.stdout.splitlines():
        stamp, _, text = line.partition(" ")
        with contextlib.suppress(ValueError):
            count += int(since <= float(stamp) <= until and "Reloading" in text)
    return count


def cut_zone(paths: lab.LabPaths, watched: watch.Watch, zone: str, number: int) -> dict[str, Any]:
    """One outage: clients on, the zone cut, the wait for every affected dependency's event, the figures."""
    store_url = watched.store
    before = routed(store_url)
    zone_of = {host.name: host.zone for host in lab.HOSTS}
    affected = sorted(n for n, item in before.items() if zone_of.get(item["_primary"]) == zone)
    stranded = sorted(n for n in affected if all(zone_of.get(i["host"]) == zone for i in before[n]["instances"]))
    clients = {
        zf.client_http(i): failover.ClientLoop(LB, zf.HTTP_PORTS + i, kind="http", max_seconds=90)
        for i in range(zf.CLIENT_HTTP)
    }
    writers = {
        zf.client_redis(i): AckedWrites(LB, zf.REDIS_PORTS + i, tag=f"{number}-{i}", max_seconds=90)
        for i in range(zf.CLIENT_REDIS)
    }
    loops: list[Any] = [*clients.values(), *writers.values()]
    with contextlib.ExitStack() as stack:
        for loop in loops:
            stack.enter_context(loop)
        time.sleep(2.0)  # traffic and acknowledged writes before the fault
        cut_at = time.time()
        lab.fault(paths, "cut", zone)
        deadline = time.monotonic() + SWITCH_TIMEOUT_S
        while time.monotonic() < deadline:
            if {e.dependency for e in events_since(store_url, cut_at, ("rollback", "refused"))} >= set(affected):
                break
            time.sleep(0.2)
        time.sleep(QUIET_S)
    until = time.time()
    found = events_since(store_url, cut_at, ("rollback", "refused", "zonal_shift"))
    # A zonal shift's own events (`zonal_shift`, or `refused` with action zonal_shift) name the zone, with
    # dependency "-": the zone's decision, counted per outage (`zone_shift`), never as a dependency's event.
    # A dependency the shift moved has its one `rollback` event, as one moved by its own alert has.
    events = [e for e in found if e.dependency not in ("", ZONE_EVENT_DEPENDENCY) and e.kind != "zonal_shift"]
    shift_events = [e for e in found if e.dependency == ZONE_EVENT_DEPENDENCY]
    per_dependency: dict[str, int] = {}
    for event in events:
        per_dependency[event.dependency] = per_dependency.get(event.dependency, 0) + 1
    switched = {
        e.dependency: float(e.details["switched_at"])
        for e in events
        if e.kind == "rollback" and e.outcome == "succeeded" and e.details.get("switched_at")
    }
    after = routed(store_url)
    touched = sorted(
        {e.dependency for e in events if e.dependency not in affected}
        | {n for n in before if n not in affected and after.get(n, {}).get("_primary") != before[n]["_primary"]}
    )
    movable = [n for n in affected if n not in stranded]
    complete = set(movable) <= set(switched)
    rollbacks = [e for e in events if e.kind == "rollback"]
    batches: dict[str, int] = {}
    batch_timings: dict[str, dict[str, Any]] = {}
    for event in rollbacks:
        batch = str(event.details.get("batch"))
        batches[batch] = batches.get(batch, 0) + 1
        # What the fast path spent on the batch (decide, migrate, route, verify, record) and when it switched.
        batch_timings[batch] = {
            **(event.details.get("timings") or {}),
            "switched_s": round(float(event.details.get("switched_at") or cut_at) - cut_at, 3),
        }
    last = max(switched, key=lambda n: switched[n]) if switched else None
    chains = {
        name: chain.collect(
            prometheus_url=watched.prometheus_url,
            store_url=store_url,
            logs=watched.dir / "logs",
            dependency=name,
            host=before[name]["_primary"],
            fault_at=cut_at,
            until=until,
            evidence=name == last,
        )
        for name in affected
    }
    lost = {name: w.lost() for name, w in writers.items()}
    arrived = arrivals(store_url, {n: before[n]["_primary"] for n in affected}, cut_at)
    zone_alert = [
        round(row["received_at"] - cut_at, 3)
        for row in chain.queued_alerts(store_url, "", f"{ZONE_INSTANCE_PREFIX}{zone}", cut_at)
        if row["status"] == "firing"
    ]
    by_shift = sorted(
        e.dependency
        for e in rollbacks
        if str(e.trigger.get("fingerprint") or "").startswith(SHIFT_FINGERPRINT_PREFIX)
        or any(str(f).startswith(SHIFT_FINGERPRINT_PREFIX) for f in e.trigger.get("fingerprints") or [])
    )
    result = {
        "number": number,
        "zone": zone,
        "fault_at": datetime.fromtimestamp(cut_at, UTC).isoformat(),
        "affected": affected,
        "stranded": stranded,
        "switched": {n: round(t - cut_at, 3) for n, t in sorted(switched.items(), key=lambda kv: kv[1])},
        "not_switched": sorted(set(movable) - set(switched)),
        "fault_to_first_switched_s": round(min(switched.values()) - cut_at, 3) if switched else None,
        "fault_to_last_switched_s": round(max(switched.values()) - cut_at, 3) if switched and complete else None,
        "last_switched": last,
        "events_per_dependency": per_dependency,
        "event_outcomes": sorted({(e.kind, e.outcome) for e in events}),
        "unaffected_touched": touched,
        "batches": batches,
        "batch_timings": batch_timings,
        "reloads": zf.reloads_by_lb(rollbacks),
        "nginx_reloads_lb1": nginx_reloads(paths, cut_at, until),
        "arrivals": arrived,
        # The zone alert (DepmirrorZoneDown) reaching the runner, the shift it started (or its refusal), and
        # which dependencies the shift's items switched rather than their own alerts.
        "zone_alert_received_s": zone_alert[0] if zone_alert else None,
        "zone_shift": [
            {
                "kind": e.kind,
                "outcome": e.outcome,
                "at_s": round(e.time.timestamp() - cut_at, 3),
                "moved": len(e.details.get("moved") or []),
                "reason": e.reason[:300],
            }
            for e in shift_events
        ],
        "switched_by_shift": by_shift,
        "gather_replay": zf.gather_replay([a["received_s"] for a in arrived], GATHER_SETTINGS),
        "client_errors": sum(len(c.errors) for c in clients.values()),
        "client_error_samples": [e for c in clients.values() for e in c.errors][:5],
        "client_requests": sum(c.sent for c in clients.values()),
        "redis_acked": sum(len(w.acked) for w in writers.values()),
        "redis_failed_writes": sum(w.failed for w in writers.values()),
        "redis_lost": sum(len(keys) for keys in lost.values()),
        "redis_lost_samples": {n: keys[:5] for n, keys in lost.items() if keys},
        # Every affected dependency's timeline; the whole chain (decisions, webhooks, evidence) of the last.
        "chains": {name: c if name == last else _brief(c) for name, c in chains.items()},
        "steps_s": {
            step: zf.percentile(
                [c["steps_s"][step] for c in chains.values() if c["steps_s"].get(step) is not None], 0.5
            )
            for step in chain.STEPS
        },
        "load": machine.load(),
    }
    print(
        f"outage {number} {zone}: {len(affected)} affected, {len(switched)} switched, "
        f"first {result['fault_to_first_switched_s']} s, last {result['fault_to_last_switched_s']} s, "
        f"batches {sorted(batches.values(), reverse=True)}, reloads {result['reloads']} "
        f"(nginx log {result['nginx_reloads_lb1']}), events/dependency {sorted(set(per_dependency.values()))}, "
        f"touched {touched}, zone alert {result['zone_alert_received_s']} s, "
        f"shift {[(z['kind'], z['outcome'], z['at_s'], z['moved']) for z in result['zone_shift']]}, "
        f"by the shift {len(by_shift)}, client errors {result['client_errors']}/{result['client_requests']}, "
        f"redis lost {result['redis_lost']}/{result['redis_acked']}",
        flush=True,
    )
    return result


def _brief(found: dict[str, Any]) -> dict[str, Any]:
    return {key: found.get(key) for key in ("at", "steps_s", "broke_at", "alertname")}


def repair(paths: lab.LabPaths, watched: watch.Watch, outage: dict[str, Any]) -> dict[str, Any]:
    """The zone back, every instance healthy, the zone's shift ended, every switched dependency failed back
    in one failback.yml run, the probes re-labelled. What it did and how long each part took."""
    began = time.time()
    done: dict[str, Any] = {}
    zone = outage["zone"]
    last = max(outage["switched"].values(), default=0.0)
    fault_at = datetime.fromisoformat(outage["fault_at"]).timestamp()
    # The fast path fences the failed primaries in the background, FENCE_THREADS at a time, each giving up on
    # its cut host after its window: one whose host answers again before that stops its instance. The first
    # run of this bench restored after one window for 20 fences and 3 of 5 repairs found instances stopped.
    rounds = -(-len(outage["switched"]) // FENCE_THREADS)
    time.sleep(max(0.0, fault_at + last + failover.FENCE_WINDOW_S * max(1, rounds) - time.time()))
    lab.restore(paths, zone)
    hosts = {h.name for h in lab.HOSTS if h.zone == zone}
    units: dict[str, list[str]] = {}
    for dependency, host, _ in watched.instances:
        if host in hosts:
            units.setdefault(host, []).append(f"depmirror-{dependency}.service")
    for attempt in range(2):  # once more if a late fence stopped something after the first start
        for host, names in sorted(units.items()):
            failover.ssh(paths, host, f"systemctl enable --now {' '.join(sorted(names))}", timeout_s=120)
        try:
            failover.wait_healthy(watched, None, timeout_s=90)
            break
        except lab.LabError as error:
            if attempt:
                raise
            done["first_start_error"] = str(error)[-300:]
    done["healthy_after_s"] = round(time.time() - began, 3)
    # The shift ends as `depmirror zone end` ends it (the same fleet function); failback=False: the bench
    # fails every switched dependency back below, those its own alert moved too, in one failback.yml run.
    ended = _end_shifts(watched, "bench/zone_outage.py: the zone was repaired")
    if ended:
        done["shifts_ended"] = ended
    switched = routed(watched.store)
    items = [
        {"dependency": name, "instance": host}
        for name in outage["switched"]
        for host in [_failed_host(watched.store, name, fault_at)]
        if host and switched[name]["_primary"] != host
    ]
    if items:
        variables = {
            "depmirror_dependencies": items,
            "depmirror_store": watched.store,
            "depmirror_prometheus_url": watched.prometheus_url,
            "rollback_health_interval": 1.0,
            "rollback_failback_hold_seconds": 0,
            "depmirror_trigger": {"type": "bench", "reason": f"zone {zone} repaired after outage {outage['number']}"},
        }
        started = time.time()
        try:
            failover._ansible_playbook(ROOT, "playbooks/failback.yml", watched.inventories, variables, timeout_s=600)
        except lab.LabError as error:
            done["failback_error"] = str(error)[-1500:]
        done["failback_s"] = round(time.time() - started, 3)
        done["failback_reloads_lb1"] = nginx_reloads(paths, started, time.time())
        done["failed_back"] = len(
            [e for e in events_since(watched.store, started, ("failback",)) if e.outcome == "succeeded"]
        )
    watched.refresh_targets(wait_s=failover.RELABEL_WAIT_S)
    time.sleep(3.5)  # the runner's cooldown (3 s) after the failbacks
    done["repair_s"] = round(time.time() - began, 3)
    print(f"     repaired {zone}: {done}", flush=True)
    return done


def _end_shifts(watched: watch.Watch, why: str) -> list[str]:
    """End every open zonal shift (the next outage's zone alert must not be refused as a second shift)."""
    ended = []
    with open_store(watched.store) as store:
        now = datetime.now(UTC)
        for shift in store.zonal_shifts(active_at=now):
            if end_shift(
                store,
                shift.zone,
                now=now,
                end_reason=why,
                ended_by="bench/zone_outage.py",
                failback=False,
                failback_hold_s=0,
            ):
                ended.append(shift.zone)
    return ended


def _failed_host(store_url: str, dependency: str, since: float) -> str | None:
    events = events_since(store_url, since, ("rollback",))
    return next((e.instance for e in events if e.dependency == dependency and e.outcome == "succeeded"), None)


def restore_everything(paths: lab.LabPaths, watched: watch.Watch) -> bool:
    """After an outage that went wrong: every host back, every instance started, healthy; whether it is."""
    try:
        lab.restore(paths)
        hosts: dict[str, list[str]] = {}
        for dependency, host, _ in watched.instances:
            hosts.setdefault(host, []).append(f"depmirror-{dependency}.service")
        for host, names in hosts.items():
            failover.ssh(paths, host, f"systemctl enable --now {' '.join(names)}", timeout_s=120)
        failover.wait_healthy(watched, None, timeout_s=120)
        _end_shifts(watched, "bench/zone_outage.py: the lab was restored after an outage that went wrong")
        return True
    except (lab.LabError, subprocess.TimeoutExpired):
        return False


def run(args: argparse.Namespace, paths: lab.LabPaths, workdir: Path, outages: list[dict[str, Any]]) -> str | None:
    """Deploy, watch, and every outage in turn; why the run stopped early, or None."""
    stop_at = time.monotonic() + args.max_minutes * 60
    fleet = deploy(paths, workdir, args.dependencies, args.zone_samples)
    watched = failover.watch_fleet(
        paths, fleet, ROOT, healthy_within_s=240, cooldown_s=3.0, flap_max_transitions=10_000
    )
    zones = lab.zones()
    for number in range(args.outages):
        if time.monotonic() > stop_at:
            return f"--max-minutes {args.max_minutes} reached after {number} outages"
        zone = zones[number % len(zones)]
        try:
            outage = cut_zone(paths, watched, zone, number + 1)
            outages.append(outage)
            outage["repair"] = repair(paths, watched, outage)
        except (lab.LabError, subprocess.TimeoutExpired) as error:
            print(f"outage {number + 1} {zone} went wrong: {str(error)[-500:]}", flush=True)
            if outages and outages[-1]["number"] == number + 1:
                outages[-1]["repair"] = {"error": str(error)[-1500:]}
            if not restore_everything(paths, watched):
                return f"the lab did not come back after outage {number + 1}: {str(error)[-300:]}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dependencies", type=int, default=60, help="dependencies in the graph (default 60)")
    parser.add_argument("--outages", type=int, default=5, help="zone cuts, zones in turn (default 5)")
    parser.add_argument(
        "--zone-samples",
        type=int,
        default=1,
        help="policy.zonal_shift.samples (default 1: one failed probe, as the dependencies' health.samples here)",
    )
    parser.add_argument("--max-minutes", type=float, default=30.0, help="no new outage after this (default 30)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not 8 <= args.dependencies <= 150 or not 1 <= args.outages <= 20 or not 1 <= args.zone_samples <= 10:
        parser.error("--dependencies 8..150, --outages 1..20, --zone-samples 1..10")
    if os.geteuid() != 0:
        sys.exit("bench/zone_outage.py: needs root (the lab)")
    # `timeout` (or a person's kill) must still take the lab down: SIGTERM unwinds through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench/zone_outage.py: terminated"))
    paths = lab.lab_paths(ROOT)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = machine.load()
    outages: list[dict[str, Any]] = []
    stopped: str | None = None
    with lab_lock(), tempfile.TemporaryDirectory(prefix="depmirror-zone-outage-") as workdir:
        try:
            lab.up(paths)
            lab.restore(paths)
            stopped = run(args, paths, Path(workdir), outages)
        except (lab.LabError, subprocess.TimeoutExpired) as error:
            stopped = f"the run failed: {str(error)[-1500:]}"
        finally:
            watch.stop(paths)
            with contextlib.suppress(lab.LabError):
                lab.restore(paths)
            lab.down(paths)
    summary = zf.outage_summary(outages) if outages else {}
    report = {
        "started": started,
        "machine": {
            "cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "load_start": load_start,
            "load_end": machine.load(),
        },
        "settings": {
            "dependencies": args.dependencies,
            "scrape_and_evaluation_s": 1,
            "group_wait_s": 0,
            "health_samples": 1,
            "zone_alert_samples": args.zone_samples,
            "path": "fast",
            "clients": {"http_active_active": zf.CLIENT_HTTP, "redis_wait_1": zf.CLIENT_REDIS},
        },
        "targets": TARGETS,
        "stopped_early": stopped,
        **summary,
        "steps_s_p50": {
            step: zf.percentile([o["steps_s"][step] for o in outages if o["steps_s"].get(step) is not None], 0.5)
            for step in chain.STEPS
        },
        "outages_detail": outages,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "outages_detail"}, indent=2, default=str))
    return 1 if stopped or not outages else 0


if __name__ == "__main__":
    sys.exit(main())
