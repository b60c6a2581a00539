"""Real Prometheus, blackbox exporter, Alertmanager, HTTP and Redis on 127.0.0.0/8, for the health tests.

Every process runs in its own session and is stopped by its PID (SIGTERM, then SIGKILL), never by name.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from depmirror_lab.watch import BLACKBOX_MODULES

PROMETHEUS = "/usr/bin/prometheus"
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
REDIS = "/usr/bin/redis-server"


def need(*binaries: str) -> None:
    missing = [b for b in binaries if not Path(b).exists()]
    if missing:
        pytest.skip(f"Debian package binaries missing: {', '.join(missing)}")


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait(timeout=5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@dataclass
class Processes:
    """Everything a test started; `stop_all` in teardown, newest first, by PID."""

    workdir: Path
    started: list[Process] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> Process:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        process = Process(name, popen, log)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


def wait_until(check: Any, timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll `check()` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            last = check()
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as response:
        return bool(response.status == 200)


def start_http_instance(procs: Processes, name: str, address: str, port: int) -> Process:
    root = procs.workdir / f"{name}-root"
    root.mkdir(exist_ok=True)
    (root / "index.html").write_text("ok\n")
    process = procs.start(
        name, [sys.executable, "-m", "http.server", str(port), "--bind", address, "--directory", str(root)]
    )
    wait_until(lambda: http_ok(f"http://{address}:{port}/"), 10, f"{name} to serve")
    return process


def start_redis(procs: Processes, name: str, address: str, port: int) -> Process:
    process = procs.start(
        name,
        [
            REDIS,
            "--port",
            str(port),
            "--bind",
            address,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(procs.workdir),
            "--daemonize",
            "no",
        ],
    )
    wait_until(lambda: _tcp_open(address, port), 10, f"{name} to listen")
    return process


def _tcp_open(address: str, port: int) -> bool:
    with socket.create_connection((address, port), timeout=1):
        return True


def start_blackbox(procs: Processes, port: int | None = None) -> str:
    config = procs.workdir / "blackbox.yml"
    config.write_text(yaml.safe_dump(BLACKBOX_MODULES))
    port = port or free_port()
    procs.start("blackbox", [BLACKBOX, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"])
    address = f"127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"http://{address}/metrics"), 15, "the blackbox exporter")
    return address


def start_prometheus(procs: Processes, config: Path, name: str = "prometheus") -> tuple[Process, str]:
    port = free_port()
    storage = procs.workdir / f"{name}-data"
    process = procs.start(
        name,
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/-/ready"), 20, "Prometheus to be ready")
    except AssertionError:
        raise AssertionError(process.output()) from None
    return process, url


def start_alertmanager(procs: Processes, config: Path, port: int | None = None) -> tuple[Process, str]:
    port = port or free_port()
    process = procs.start(
        "alertmanager",
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={procs.workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/-/ready"), 20, "Alertmanager to be ready")
    except AssertionError:
        raise AssertionError(process.output()) from None
    return process, url


def prometheus_query(url: str, query: str) -> list[dict[str, Any]]:
    target = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(target, timeout=2) as response:
        result: list[dict[str, Any]] = json.load(response)["data"]["result"]
    return result


@dataclass
class Received:
    body: dict[str, Any]
    authorization: str | None


class WebhookReceiver:
    """A tiny stand-in for the runner's webhook: records every POST and its Authorization header."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._lock:
                    receiver.received.append(Received(body, self.headers.get("Authorization")))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alertmanager"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


@contextlib.contextmanager
def processes(workdir: Path) -> Iterator[Processes]:
    procs = Processes(workdir)
    try:
        yield procs
    finally:
        procs.stop_all()


def promtool() -> str:
    return shutil.which("promtool") or "/usr/bin/promtool"
