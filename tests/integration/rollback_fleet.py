"""The example fleet deployed on the lab, watched by a real Prometheus: the rollback tests' world.

The lab is shared by every engineer's sessions: the whole fleet lives inside an exclusive flock on
/tmp/depmirror-lab.lock, and the lab is always brought down when the lock is released.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import depmirror_lab as lab
import yaml
from depmirror_lab import failover
from tests.integration.ansible_run import ROOT, PlaybookRun, playbook
from tests.integration.health_services import Processes, processes, start_blackbox, start_prometheus, wait_until

from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.health.evaluate import fetch_health
from depmirror.health.queries import InstanceRef
from depmirror.health.rules import render_targets, scrape_configs
from depmirror.store import EventFilter, open_store

GRAPH = ROOT / "inventories" / "example" / "graph.yml"
INTERVAL = 1.0


@dataclass
class Fleet:
    paths: lab.LabPaths
    graph: Graph
    store: str
    inventories: list[Path]
    prometheus_url: str
    procs: Processes
    workdir: Path

    def run(self, name: str, **extra_vars: Any) -> tuple[PlaybookRun, float]:
        """ansible-playbook as a person runs it, and its wall time in seconds."""
        variables = {
            "depmirror_prometheus_url": self.prometheus_url,
            "rollback_health_interval": INTERVAL,
            **extra_vars,
        }
        started = time.monotonic()
        done = playbook(f"playbooks/{name}", self.inventories, "-e", json.dumps(variables), timeout=300)
        return done, time.monotonic() - started

    def applied(self, dependency: str) -> dict[str, Any]:
        with open_store(self.store) as store:
            plan = (store.applied_plan() or {})["plan"]
        return next(item for item in plan["dependencies"] if item["name"] == dependency)

    def primary(self, dependency: str) -> str | None:
        with open_store(self.store) as store:
            return store.primary(dependency)

    def events(self, dependency: str, *kinds: str) -> list[Any]:
        with open_store(self.store) as store:
            return store.events(EventFilter(dependency=dependency, kinds=kinds))

    def ssh(self, host: str, command: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return failover.ssh(self.paths, host, command, timeout_s=timeout)

    def health(self, dependency: str) -> dict[str, str]:
        report = fetch_health(
            self.graph, self.prometheus_url, None, timeout=2, interval=INTERVAL, dependencies={dependency}
        )
        return {v.host: v.state for v in report.verdicts}

    def wait_health(self, dependency: str, host: str, state: str, timeout: float = 30) -> None:
        wait_until(
            lambda: self.health(dependency).get(host) == state, timeout, f"{dependency}@{host} to be {state}", every=0.5
        )


def lb_address(graph: Graph) -> str:
    return next(iter(graph.load_balancers.values())).address


def _write_prometheus(workdir: Path, graph: Graph, applied: dict[str, Any], blackbox: str) -> Path:
    refs = [
        InstanceRef(item["name"], i["host"], i["role"]) for item in applied["dependencies"] for i in item["instances"]
    ]
    targets = workdir / "targets.json"
    targets.write_text(json.dumps(render_targets(graph, refs)))
    config = workdir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": scrape_configs(blackbox, [str(targets)], INTERVAL),
            }
        )
    )
    return config


@contextlib.contextmanager
def fleet(workdir: Path, paths: lab.LabPaths) -> Iterator[Fleet]:
    """On the session's lab, from nothing: adjust.yml over the example graph with a store, and Prometheus.

    The lab is restored (faults undone, hosts repaired) on the way in and out, for the tests after these.
    """
    lab.restore(paths)
    lab.up(paths)
    try:
        wiped = playbook("tests/integration/playbooks/wipe.yml", [paths.inventory])
        assert wiped.rc == 0, wiped.messages() or wiped.stderr[-3000:]
        store = f"sqlite:///{workdir / 'depmirror.db'}"
        source = workdir / "lab.depmirror.yml"
        source.write_text(
            yaml.safe_dump(
                {
                    "plugin": "depmirror.mirroring.graph",
                    "graph": str(GRAPH),
                    "state_store": store,
                }
            )
        )
        inventories = [paths.inventory, source]
        adjusted = playbook("playbooks/adjust.yml", inventories, timeout=600)
        assert adjusted.rc == 0, adjusted.messages() or adjusted.stderr[-3000:]
        graph = load_graph(GRAPH)
        with open_store(store) as opened:
            applied = (opened.applied_plan() or {})["plan"]
        with processes(workdir) as procs:
            config = _write_prometheus(workdir, graph, applied, start_blackbox(procs))
            _process, url = start_prometheus(procs, config)
            world = Fleet(paths, graph, store, inventories, url, procs, workdir)
            every = {(item["name"], i["host"]) for item in applied["dependencies"] for i in item["instances"]}
            wait_until(
                lambda: all(world.health(d).get(h) == "healthy" for d, h in every),
                60,
                "every instance of the fleet healthy in Prometheus",
                every=1.0,
            )
            yield world
    finally:
        lab.restore(paths)
        lab.up(paths)


def lb_file(world: Fleet, path: str) -> str:
    done = world.ssh("lb1", f"cat {path}")
    assert done.returncode == 0, done.stderr
    return done.stdout


def nginx_files(world: Fleet) -> str:
    """Every file nginx reads from depmirror (the live config, the releases, the last good), with hashes."""
    command = "sha1sum /etc/nginx/nginx.conf; find /etc/nginx/depmirror -type f | sort | xargs sha1sum"
    done = world.ssh("lb1", command)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Resp:
    """A minimal RESP client for the write-load test (no redis package in the venv)."""

    def __init__(self, address: str, port: int, timeout: float = 2.0) -> None:
        self.sock = socket.create_connection((address, port), timeout=timeout)
        self.stream = self.sock.makefile("rb")

    def call(self, *args: str) -> Any:
        from depmirror.rollback.traffic_check import _read_reply

        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        self.sock.sendall(payload.encode())
        return _read_reply(self.stream)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()
            self.sock.close()


def environment_has_lab() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root"
    if subprocess.run(["which", "podman"], capture_output=True, check=False).returncode != 0:
        return "the lab needs podman"
    return None
