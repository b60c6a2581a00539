"""A real nginx on loopback as a load balancer, and one serving every backend instance, without the lab.

`LocalLoadBalancer` is a fast-path transport (rollback.batch_release.Transport): instead of sending the
collection's nginx_swap.py over SSH, it runs that same source here, against a real nginx started from a temp
directory. The only differences from a VM: the machine paths of the role's nginx.conf (pid, logs, user)
point into the temp directory, `systemctl reload-or-restart nginx` is a SIGHUP to the master (what
`systemctl reload nginx` does), and `worker_connections` is raised so 1,000 listening ports fit. Every
reload is counted from nginx's own log (its master writes "signal 1 (SIGHUP) received" at notice level).
Used by tests/unit/rollback/test_batch*.py and bench/zone_batch.py.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from depmirror.errors import DepmirrorError
from depmirror.fleet.applied import record_applied_plan
from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.planner.plan import compute_plan
from depmirror.rollback.flow import Health, running_dependencies
from depmirror.rollback.nginx import NginxOptions, render_release
from depmirror.rollback.switchover import FastPath

NGINX = "/usr/sbin/nginx"
# The template's machine paths (roles/nginx_upstream/templates/nginx.conf.j2) and what they become here.
_MACHINE = {
    "user www-data;": "",
    "pid /run/nginx.pid;": "pid {root}/nginx.pid;",
    "worker_connections 1024;": "worker_connections 16384;",
    "access_log /var/log/nginx/access.log;": "access_log off;",
    "error_log /var/log/nginx/error.log;": "error_log {root}/http-error.log;",
}


class LocalNginxError(DepmirrorError):
    """What remote.RemoteError says for an LB that refused a release."""


def options_for(root: Path) -> NginxOptions:
    """NginxOptions that put the release, the live config and the last good one under `root`."""
    return NginxOptions(conf_dir=str(root / "depmirror"), nginx_conf=str(root / "nginx.conf"), http_includes=())


class LocalLoadBalancer:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "depmirror" / "releases").mkdir(parents=True, exist_ok=True)
        self.main_log = root / "main.log"
        self.pid_file = root / "nginx.pid"
        self.swaps = 0

    # --- the transport ------------------------------------------------------------------------------
    def warm(self, address: str) -> None:
        return None

    def swap_release(self, address: str, swap_source: str, params: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": "nginx_swap"}
        exec(compile(swap_source, "nginx_swap.py", "exec"), namespace)  # the collection's own file, as SSH runs it
        local = dict(params, content=self._localised(params["content"]), validate=self._nginx("-t -q -c %s"))
        self.swaps += 1
        try:
            result: dict[str, Any] = namespace["swap_release"](local, self._run)
        except namespace["SwapError"] as error:
            raise LocalNginxError(f"{address}: {error.msg}") from error
        return result

    def run(self, address: str, command: str, stdin: str = "", timeout_s: float = 10.0) -> tuple[int, str, str]:
        # Fencing a VM: there are none here (a dead zone's hosts do not answer either).
        return 255, "", f"ssh: connect to host {address}: no route (local load balancer)"

    def close(self) -> None:
        return None

    # --- nginx --------------------------------------------------------------------------------------
    def start(self, content: str) -> None:
        """Start nginx on `content` (a release's nginx.conf, localised here)."""
        conf = self.root / "nginx.conf"
        conf.write_text(self._localised(content))
        subprocess.run(shlex.split(self._nginx(f"-c {conf}")), check=True, timeout=30)
        _wait_for(self.pid_file)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGQUIT)
            _wait_gone(pid)

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def reloads(self) -> int:
        """How many times the master was told to reload, from its log."""
        if not self.main_log.exists():
            return 0
        return len(re.findall(r"signal 1 \(SIGHUP\) received", self.main_log.read_text()))

    def _nginx(self, arguments: str) -> str:
        return f"{NGINX} -e {self.main_log} -g {shlex.quote(f'error_log {self.main_log} notice;')} {arguments}"

    def _localised(self, content: str) -> str:
        for machine, local in _MACHINE.items():
            content = content.replace(machine, local.format(root=self.root))
        return content

    def _run(self, argv: list[str]) -> tuple[int, str, str]:
        if argv[:2] == ["systemctl", "reload-or-restart"]:
            pid = self.pid()
            if pid is None:
                done = subprocess.run(
                    shlex.split(self._nginx(f"-c {self.root / 'nginx.conf'}")), capture_output=True, text=True
                )
                return done.returncode, done.stdout, done.stderr
            os.kill(pid, signal.SIGHUP)
            return 0, "", ""
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        return done.returncode, done.stdout, done.stderr


class Backends:
    """One nginx answering on every (address, port) given: the instances of the dependencies."""

    def __init__(self, root: Path, listens: Iterable[tuple[str, int]]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(
            f"server {{ listen {address}:{port}; location / {{ return 200 'ok\\n'; }} }}" for address, port in listens
        )
        (root / "nginx.conf").write_text(
            f"worker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\n"
            "events { worker_connections 16384; }\n"
            f"http {{ access_log off;\n{servers}\n}}\n"
        )

    def start(self) -> None:
        subprocess.run(
            [NGINX, "-e", str(self.root / "error.log"), "-c", str(self.root / "nginx.conf")], check=True, timeout=30
        )
        _wait_for(self.root / "nginx.pid")

    def stop(self) -> None:
        try:
            pid = int((self.root / "nginx.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        os.kill(pid, signal.SIGQUIT)
        _wait_gone(pid)


def _wait_for(path: Path, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"nginx wrote no {path} within {timeout_s} s")
        time.sleep(0.02)


def _wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


# --- a fleet on loopback -------------------------------------------------------------------------------
ZONES = ("zone-a", "zone-b", "zone-c")


def loopback_fleet(
    root: Path, dependencies: int, *, vms_per_zone: int = 4, seed_octet: int | None = None, kind: str = "http"
) -> Fleet:
    """A graph of `dependencies` dependencies of `kind` (RF 3, one instance per zone; the planner picks the
    mode), one LB, VMs on loopback addresses, free ports; its plan recorded in a SQLite store as adjust.yml
    would record it. Tiers vary, so weights do."""
    root.mkdir(parents=True, exist_ok=True)
    octet = seed_octet if seed_octet is not None else 100 + os.getpid() % 150
    lb_address = f"127.{octet}.0.1"
    port = _free_ports(lb_address, dependencies)
    data: dict[str, Any] = {
        "version": 1,
        "zones": {zone: {} for zone in ZONES},
        "vms": {
            f"vm-{zone[-1]}{k}": {"address": f"127.{octet}.{z + 1}.{k + 1}", "zone": zone, "capacity": dependencies}
            for z, zone in enumerate(ZONES)
            for k in range(vms_per_zone)
        },
        "load_balancers": {"lb1": {"address": lb_address}},
        "services": {"shop": {"tier": 0, "depends_on": {}}},
        "dependencies": {},
    }
    for i in range(dependencies):
        name = f"dep-{i:04d}"
        data["dependencies"][name] = {
            "tier": i % 4,
            "kind": kind,
            "port": port + i,
            "replication": {"min": 3, "max": 3},
        }
        if kind != "redis":
            data["dependencies"][name]["deploy"] = {"command": "python3 -m http.server {port}"}
    graph_path = root / "graph.yml"
    graph_path.write_text(yaml.safe_dump(data))
    graph = load_graph(graph_path)
    store_url = f"sqlite:///{root / 'depmirror.db'}"
    plan = compute_plan(graph, None, None, 0.0).to_dict()
    record_applied_plan(store_url, plan)
    return Fleet(graph_path, store_url, graph, plan["dependencies"], lb_address)


@dataclass(frozen=True, slots=True)
class Fleet:
    graph_path: Path
    store_url: str
    graph: Graph
    plan: list[dict[str, Any]]
    lb_address: str

    def primaries_in(self, zone: str) -> list[dict[str, Any]]:
        return [item for item in self.plan if item["primary"] and _zone_of(item, item["primary"]["host"]) == zone]

    def listens(self, except_zone: str | None = None) -> list[tuple[str, int]]:
        """Where the instances listen, but those of `except_zone` (down)."""
        return [
            (i["address"], int(i.get("port") or item["port"]))
            for item in self.plan
            for i in item["instances"]
            if i["zone"] != except_zone
        ]

    def health_without(self, zone: str) -> Callable[[Collection[str]], dict[str, Health]]:
        """Health as Prometheus would report it with `zone` down: its instances failing, the rest healthy."""
        by_name = {item["name"]: item for item in self.plan}

        def source(names: Collection[str]) -> dict[str, Health]:
            found = {}
            for name in names:
                hosts = {i["host"]: i["zone"] for i in by_name[name]["instances"]} if name in by_name else {}
                scores: dict[str, float | None] = {h: 0.0 if z == zone else 1.0 for h, z in hosts.items()}
                states = {h: "failing" if z == zone else "healthy" for h, z in hosts.items()}
                found[name] = Health(scores, {}, [], [], states)
            return found

        return source


def _zone_of(item: dict[str, Any], host: str) -> str:
    return next(str(i["zone"]) for i in item["instances"] if i["host"] == host)


def _free_ports(address: str, count: int) -> int:
    """A base port from which `count` ports are free on `address` (checked by binding each)."""
    for base in range(20000, 60000 - count, count + 7):
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((address, port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} free ports in a row on {address}")


def serve_first_release(fast: FastPath, fleet: Fleet, lb: LocalLoadBalancer) -> None:
    """Start the LB on the release adjust.yml would have swapped in before anything failed."""
    routing = dataclasses.asdict(fast.graph.policy.routing)
    dependencies = running_dependencies(fleet.store_url)
    first = render_release(fast.templates, dependencies, routing, 0.5, fleet.lb_address, fast.config.nginx)
    Path(first.release).mkdir(parents=True, exist_ok=True)
    for name, text in first.files.items():
        (Path(first.release) / name).write_text(text)
    lb.start(first.content)
