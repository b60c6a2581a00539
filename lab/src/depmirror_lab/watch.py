"""The lab's watchers, wired as a fleet's would be: blackbox exporter, Prometheus with depmirror's alert rules,
Alertmanager, and the runner (`depmirror serve`, fast path on), all on 127.0.0.1.

They run as lab daemons (PID files; `depmirror lab down` stops them). The defaults are the fast settings
of docs/performance.md: scrape and rule evaluation every second, Alertmanager's group_wait 0 s.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from depmirror.fleet import probe_targets
from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.health.queries import InstanceRef
from depmirror.health.rules import render_rules, render_targets, render_zone_rules, scrape_configs
from depmirror.store import open_store
from depmirror_lab import daemons
from depmirror_lab.paths import LabPaths
from depmirror_lab.system import LabError

BINARIES = {
    "blackbox": "/usr/bin/prometheus-blackbox-exporter",
    "prometheus": "/usr/bin/prometheus",
    "alertmanager": "/usr/bin/prometheus-alertmanager",
}
# Stopped in this order: nothing sends to a process that has gone.
NAMES = ("prometheus", "alertmanager", "alertmanager-2", "runner", "blackbox")
ALERTMANAGERS = ("alertmanager", "alertmanager-2")
BLACKBOX_MODULES = {
    "modules": {
        "http_2xx": {"prober": "http", "timeout": "1s", "http": {"preferred_ip_protocol": "ip4"}},
        "tcp_connect": {"prober": "tcp", "timeout": "1s", "tcp": {"preferred_ip_protocol": "ip4"}},
    }
}
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class WatchSettings:
    graph: Path
    store: str
    inventories: tuple[Path, ...]
    collection: Path
    interval_s: float = 1.0
    cooldown_s: float = 10.0
    # The runner's flap damping (docs/runner.md); a benchmark that faults the same instance again and again
    # must raise it, or its alert is damped as flapping, as it should be in a fleet.
    flap_max_transitions: int = 6
    fast_path: bool = True
    # 2: two Alertmanagers in a cluster (gossip on loopback, --cluster.peer each other), both alerted by
    # Prometheus and both sending to the runner, as docs/ha.md deploys them (issue 17).
    alertmanagers: int = 1


@dataclass
class Watch:
    dir: Path
    graph: str
    store: str
    prometheus_url: str
    alertmanager_url: str
    runner_url: str
    token: str = field(repr=False)
    inventories: list[str] = field(default_factory=list)
    # [dependency, host, role] of every instance the watch was started with: a fenced instance is still
    # probed, so that failback can see it recover.
    instances: list[list[str]] = field(default_factory=list)
    # Every Alertmanager's URL (the first is alertmanager_url); more than one: they form a cluster.
    alertmanager_urls: list[str] = field(default_factory=list)

    def refresh_targets(self, wait_s: float = 0.0) -> None:
        """Re-label the probes with the roles the store records now (after a switchover or failback).

        Prometheus reads the file_sd file again by itself; the monitoring role does the same on adjust.
        `wait_s` > 0: also wait (up to that long) until Prometheus probes with the new labels.
        """
        written = time.time()
        wanted = write_targets(
            self.dir / "targets.json", self.graph, self.store, [(d, h, r) for d, h, r in self.instances]
        )
        if wait_s > 0:
            wait_targets_applied(self.prometheus_url, wanted, written, wait_s)

    def save(self) -> None:
        (self.dir / "watch.json").write_text(json.dumps({**asdict(self), "dir": str(self.dir)}, indent=2))


def load(paths: LabPaths) -> Watch:
    file = paths.state / "watch" / "watch.json"
    if not file.is_file():
        raise LabError("the lab's watchers are not running (fix: depmirror lab watch --graph G --store S)")
    data = json.loads(file.read_text())
    data["dir"] = Path(data["dir"])
    return Watch(**data)


def current_roles(store_url: str) -> dict[tuple[str, str], str]:
    """(dependency, host) -> role, from the applied plan as routed now and the recorded primaries: the roles
    the runner's GET /api/v1/targets serves (fleet/probe_targets.py)."""
    with open_store(store_url) as store:
        return probe_targets.current_roles(store.applied_plan(), store.primaries())


def write_targets(
    file: Path, graph_path: str, store_url: str, instances: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str], str]:
    """instances: (dependency, host, role when deployed); one fenced out of routing is probed as a non-primary.
    Returns the role each (dependency, host) is probed as now."""
    graph = load_graph(graph_path)
    roles = current_roles(store_url)
    refs = []
    for dependency, host, deployed_as in instances:
        fenced = "mirror" if deployed_as == "primary" else deployed_as
        refs.append(InstanceRef(dependency, host, roles.get((dependency, host), fenced)))
    temp = file.with_suffix(".tmp")
    temp.write_text(json.dumps(render_targets(graph, refs)))
    temp.replace(file)  # atomic: Prometheus never reads half a file
    return {(ref.dependency, ref.host): ref.role or "" for ref in refs}


def wait_targets_applied(
    prometheus_url: str, wanted: dict[tuple[str, str], str], since: float, timeout_s: float
) -> None:
    """Until Prometheus has scraped every probe with the role it was given, after `since`.

    Prometheus hands file_sd changes to its scrape pools at most every 5 s, and a target whose labels changed
    is a new target: its scrape loop starts afresh at its own offset and the old series goes stale. A fault in
    that window is seen late (up to the 5 s plus one interval), so a fault that follows a re-label waits here.
    """
    deadline = time.monotonic() + timeout_s
    missing: set[tuple[str, str]] = set(wanted)
    while time.monotonic() < deadline:
        missing = set(wanted) - _scraped_since(prometheus_url, wanted, since)
        if not missing:
            return
        time.sleep(0.25)
    shown = ", ".join(f"{d}@{h} as {wanted[(d, h)]}" for d, h in sorted(missing)[:5])
    raise LabError(f"Prometheus did not probe {shown} with its new role within {timeout_s:.0f}s of the re-label")


def _scraped_since(prometheus_url: str, wanted: dict[tuple[str, str], str], since: float) -> set[tuple[str, str]]:
    """The (dependency, host) whose active target carries the wanted role, has no twin with another role, and
    was scraped after `since`."""
    try:
        with urllib.request.urlopen(f"{prometheus_url}/api/v1/targets?state=active", timeout=2) as response:
            targets = json.load(response)["data"]["activeTargets"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    roles: dict[tuple[str, str], set[str]] = {}
    fresh: set[tuple[str, str]] = set()
    for target in targets:
        labels = target.get("labels", {})
        key = (labels.get("dependency", ""), labels.get("host", ""))
        if key not in wanted:
            continue
        roles.setdefault(key, set()).add(labels.get("role", ""))
        last = str(target.get("lastScrape", ""))
        try:
            scraped = datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        if labels.get("role") == wanted[key] and scraped > since:
            fresh.add(key)
    return {key for key in fresh if roles.get(key) == {wanted[key]}}


def start(paths: LabPaths, settings: WatchSettings) -> Watch:
    missing = [path for path in BINARIES.values() if not Path(path).exists()]
    if missing:
        raise LabError(f"missing {', '.join(missing)} (fix: make setup installs Debian's Prometheus packages)")
    stop(paths)
    workdir = paths.state / "watch"
    workdir.mkdir(parents=True, exist_ok=True)
    # A fresh start for a fresh fleet: Alertmanager's notification log from an earlier run would hold back
    # an identical alert as "already sent" for repeat_interval (it did, to a benchmark: no webhook for 30 s).
    for data in ("alertmanager-data", "alertmanager-2-data", "prometheus-data"):
        shutil.rmtree(workdir / data, ignore_errors=True)
    if settings.alertmanagers not in (1, 2):
        raise LabError(f"alertmanagers is {settings.alertmanagers} (fix: 1, or 2 for a cluster)")
    graph = load_graph(settings.graph)
    roles = current_roles(settings.store)
    if not roles:
        raise LabError(f"{settings.store} holds no applied plan (fix: run playbooks/adjust.yml with this store first)")
    managers = ALERTMANAGERS[: settings.alertmanagers]
    ports = {name: _free_port() for name in ("blackbox", "prometheus", "runner", *managers)}
    gossip = {name: _free_port() for name in managers} if len(managers) > 1 else {}
    token = secrets.token_hex(16)
    (workdir / "token").write_text(token)
    (workdir / "token").chmod(0o600)
    watch = Watch(
        dir=workdir,
        graph=str(settings.graph.resolve()),
        store=settings.store,
        prometheus_url=f"http://127.0.0.1:{ports['prometheus']}",
        alertmanager_url=f"http://127.0.0.1:{ports['alertmanager']}",
        runner_url=f"http://127.0.0.1:{ports['runner']}",
        token=token,
        inventories=[str(p.resolve()) for p in settings.inventories],
        instances=[[d, h, role] for (d, h), role in sorted(roles.items())],
        alertmanager_urls=[f"http://127.0.0.1:{ports[name]}" for name in managers],
    )
    every = f"{settings.interval_s:g}s"
    (workdir / "blackbox.yml").write_text(yaml.safe_dump(BLACKBOX_MODULES))
    watch.refresh_targets()
    (workdir / "rules.yml").write_text(yaml.safe_dump(alert_rules(graph, settings.interval_s), sort_keys=False))
    (workdir / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": every, "evaluation_interval": every},
                "rule_files": [str(workdir / "rules.yml")],
                # Prometheus alerts every Alertmanager itself: a cluster shares silences and notification
                # logs, not the alerts it is sent.
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports[m]}" for m in managers]}]}]
                },
                "scrape_configs": scrape_configs(
                    f"127.0.0.1:{ports['blackbox']}", [str(workdir / "targets.json")], settings.interval_s
                ),
            },
            sort_keys=False,
        )
    )
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(_alertmanager(watch, workdir)))
    (workdir / "runner.yml").write_text(yaml.safe_dump(_runner(settings, paths, watch, ports["runner"])))

    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    for old in logs.glob("*.log"):
        old.unlink()  # one watch, one set of logs: a chain read from them never mixes two fleets
    daemons.start(
        paths,
        "blackbox",
        [
            BINARIES["blackbox"],
            f"--config.file={workdir / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{ports['blackbox']}",
        ],
        logs / "blackbox.log",
    )
    daemons.start(
        paths,
        "runner",
        [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(workdir / "runner.yml")],
        logs / "runner.log",
    )
    for name in managers:
        daemons.start(paths, name, _alertmanager_argv(workdir, name, ports[name], gossip), logs / f"{name}.log")
    daemons.start(
        paths,
        "prometheus",
        [
            BINARIES["prometheus"],
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
        ],
        logs / "prometheus.log",
    )
    ready = {
        "the runner": f"{watch.runner_url}/readyz",
        **{f"Alertmanager {url}": f"{url}/-/ready" for url in watch.alertmanager_urls},
        "Prometheus": f"{watch.prometheus_url}/-/ready",
    }
    for name, url in ready.items():
        _wait_ok(url, name, logs)
    watch.save()
    return watch


def alert_rules(graph: Graph, interval_s: float) -> dict[str, Any]:
    """The rules the monitoring role loads (health.rules.monitoring_config): each dependency's, and the zone
    alert `DepmirrorZoneDown` unless the graph's `policy.zonal_shift.mode` is off. The zone alert needs
    `alert_min_vms` (default 2) VMs of a zone with every probe failing: the lab's zones have two VMs each,
    so only a whole zone fires it; one VM cut (bench/failover.py's `cut`) never does."""
    rules = render_rules(graph, interval_s)
    zone_group = render_zone_rules(graph, interval_s)
    if zone_group is not None:
        rules["groups"].append(zone_group)
    return rules


def stop(paths: LabPaths) -> list[str]:
    return [name for name in NAMES if daemons.stop(paths, name)]


def _alertmanager_argv(workdir: Path, name: str, port: int, gossip: dict[str, int]) -> list[str]:
    """One Alertmanager; with `gossip` (name -> cluster port, two or more) it joins the others' cluster."""
    cluster = ["--cluster.listen-address="]
    if gossip:
        cluster = [
            f"--cluster.listen-address=127.0.0.1:{gossip[name]}",
            f"--cluster.advertise-address=127.0.0.1:{gossip[name]}",
            *(f"--cluster.peer=127.0.0.1:{p}" for other, p in sorted(gossip.items()) if other != name),
        ]
    return [
        BINARIES["alertmanager"],
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / f'{name}-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *cluster,
        # Debug: the only level at which it logs receiving, flushing and notifying each alert, the
        # evidence lab/src/depmirror_lab/chain.py reads for a failed or slow failover.
        "--log.level=debug",
    ]


def _alertmanager(watch: Watch, workdir: Path) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "depmirror",
            # One notification per failing instance, at once: the runner dedups and decides per dependency.
            "group_by": ["dependency", "instance"],
            "group_wait": "0s",
            # A new alert that joins a group Alertmanager still holds waits for the group's next tick, not
            # group_wait: Prometheus re-sends a resolved alert every minute for 15 minutes, which brings the
            # group of an instance that failed before back, and its next failure waited up to 1 s (issue 22).
            "group_interval": "250ms",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "depmirror",
                "webhook_configs": [
                    {
                        "url": f"{watch.runner_url}/alertmanager",
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials_file": str(workdir / "token")}
                        },
                    }
                ],
            }
        ],
    }


def _runner(settings: WatchSettings, paths: LabPaths, watch: Watch, port: int) -> dict[str, Any]:
    workdir = watch.dir
    prometheus = {
        "graph": str(settings.graph.resolve()),
        "prometheus_url": watch.prometheus_url,
        "interval": f"{settings.interval_s:g}s",
        "timeout": 2,
    }
    config: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": port},
        "auth": {"type": "bearer", "token_file": str(workdir / "token")},
        "store": settings.store,
        "graph": str(settings.graph.resolve()),
        "health": {"checker": "depmirror.health.checker:factory", "options": prometheus},
        "policy": {
            "cooldown_seconds": settings.cooldown_s,
            "on_unknown_health": "refuse",
            "flap_max_transitions": settings.flap_max_transitions,
        },
        "action": {
            "kind": "ansible-runner",
            "playbook": str(settings.collection / "playbooks" / "rollback.yml"),
            "failback_playbook": str(settings.collection / "playbooks" / "failback.yml"),
            "inventory": [str(p.resolve()) for p in settings.inventories],
            "work_dir": str(workdir / "runner-work"),
            "envvars": {"ANSIBLE_CONFIG": str(settings.collection / "ansible.cfg")},
            "fast_path": {
                "enabled": settings.fast_path,
                "ssh": {"user": "root", "key_file": str(paths.ssh_key), "known_hosts": str(paths.known_hosts)},
            },
        },
    }
    return config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ok(url: str, name: str, logs: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise LabError(f"{name} did not become ready at {url} in {START_TIMEOUT_S:.0f}s (see {logs})")
