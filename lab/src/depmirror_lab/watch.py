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
from pathlib import Path
from typing import Any

import yaml

from depmirror.fleet.applied import plan_of
from depmirror.graph.load import load_graph
from depmirror.health.queries import InstanceRef
from depmirror.health.rules import render_rules, render_targets, scrape_configs
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
NAMES = ("prometheus", "alertmanager", "runner", "blackbox")
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

    def refresh_targets(self) -> None:
        """Re-label the probes with the roles the store records now (after a switchover or failback).

        Prometheus reads the file_sd file again by itself; the monitoring role does the same on adjust.
        """
        write_targets(self.dir / "targets.json", self.graph, self.store, [(d, h, r) for d, h, r in self.instances])

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
    """(dependency, host) -> role, from the applied plan as routed now and the recorded primaries."""
    with open_store(store_url) as store:
        plan = plan_of(store.applied_plan())
        primaries = store.primaries()
    roles = {}
    for item in plan.get("dependencies") or []:
        standby = "standby" if item.get("mode") == "active-passive" else "mirror"
        for instance in item.get("instances") or []:
            primary = primaries.get(item["name"])
            role = instance["role"] if primary is None else ("primary" if instance["host"] == primary else standby)
            roles[(item["name"], instance["host"])] = role
    return roles


def write_targets(file: Path, graph_path: str, store_url: str, instances: Sequence[tuple[str, str, str]]) -> None:
    """instances: (dependency, host, role when deployed); one fenced out of routing is probed as a non-primary."""
    graph = load_graph(graph_path)
    roles = current_roles(store_url)
    refs = []
    for dependency, host, deployed_as in instances:
        fenced = "mirror" if deployed_as == "primary" else deployed_as
        refs.append(InstanceRef(dependency, host, roles.get((dependency, host), fenced)))
    temp = file.with_suffix(".tmp")
    temp.write_text(json.dumps(render_targets(graph, refs)))
    temp.replace(file)  # atomic: Prometheus never reads half a file


def start(paths: LabPaths, settings: WatchSettings) -> Watch:
    missing = [path for path in BINARIES.values() if not Path(path).exists()]
    if missing:
        raise LabError(f"missing {', '.join(missing)} (fix: make setup installs Debian's Prometheus packages)")
    stop(paths)
    workdir = paths.state / "watch"
    workdir.mkdir(parents=True, exist_ok=True)
    # A fresh start for a fresh fleet: Alertmanager's notification log from an earlier run would hold back
    # an identical alert as "already sent" for repeat_interval (it did, to a benchmark: no webhook for 30 s).
    for data in ("alertmanager-data", "prometheus-data"):
        shutil.rmtree(workdir / data, ignore_errors=True)
    graph = load_graph(settings.graph)
    roles = current_roles(settings.store)
    if not roles:
        raise LabError(f"{settings.store} holds no applied plan (fix: run playbooks/adjust.yml with this store first)")
    ports = {name: _free_port() for name in ("blackbox", "prometheus", "alertmanager", "runner")}
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
    )
    every = f"{settings.interval_s:g}s"
    (workdir / "blackbox.yml").write_text(yaml.safe_dump(BLACKBOX_MODULES))
    watch.refresh_targets()
    (workdir / "rules.yml").write_text(yaml.safe_dump(render_rules(graph, settings.interval_s), sort_keys=False))
    (workdir / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": every, "evaluation_interval": every},
                "rule_files": [str(workdir / "rules.yml")],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}]
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
    daemons.start(
        paths,
        "alertmanager",
        [
            BINARIES["alertmanager"],
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
            "--cluster.listen-address=",
        ],
        logs / "alertmanager.log",
    )
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
        "Alertmanager": f"{watch.alertmanager_url}/-/ready",
        "Prometheus": f"{watch.prometheus_url}/-/ready",
    }
    for name, url in ready.items():
        _wait_ok(url, name, logs)
    watch.save()
    return watch


def stop(paths: LabPaths) -> list[str]:
    return [name for name in NAMES if daemons.stop(paths, name)]


def _alertmanager(watch: Watch, workdir: Path) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "depmirror",
            # One notification per failing instance, at once: the runner dedups and decides per dependency.
            "group_by": ["dependency", "instance"],
            "group_wait": "0s",
            "group_interval": "1s",
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
