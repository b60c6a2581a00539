"""The runner's secrets against a real `depmirror serve`: never in a log line (oversized, malformed and
wrong Authorization headers, DEBUG logging), gone from /proc/<pid>/environ, and weak setups refused."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.fakes.webhook import alert, free_port, notification

from depmirror.errors import ConfigError
from depmirror.runner.config import load_config
from depmirror.store import EventFilter, open_store

SECRET = "s3cret-webhook-token-4f9d2c7a1b"


def _config(tmp_path: Path, **overrides: Any) -> Path:
    data: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": free_port()},
        "auth": {"type": "bearer", "token_env": "DEPMIRROR_TEST_SECRET"},
        "store": "history.db",
        "dependencies": {"payments": ["payments-a", "payments-b"]},
        "mode": "shadow",
        **overrides,
    }
    path = tmp_path / "runner.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_token_never_reaches_a_log_line_nor_proc_environ(tmp_path: Path) -> None:
    config = _config(tmp_path)
    port = yaml.safe_load(config.read_text())["listen"]["port"]
    log_path = tmp_path / "runner.log"
    env = {**os.environ, "DEPMIRROR_TEST_SECRET": SECRET}
    with log_path.open("wb") as log:
        runner = subprocess.Popen(
            [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(config), "--log-level", "DEBUG"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and b"listening" not in log_path.read_bytes():
            time.sleep(0.1)
        body = json.dumps(notification(alert())).encode()
        cases = [
            # Over aiohttp's 8,190-byte header limit: its parser error quotes the header.
            f"Bearer {SECRET}{'x' * 9000}".encode(),
            f"Bearer {'x' * 9000}{SECRET}".encode(),
            # Malformed: control characters, non-UTF-8 bytes, a folded line, the token as a basic password.
            f"Bearer {SECRET}\x01\x7f".encode(),
            b"Bearer " + SECRET.encode() + b"\xff\xfe",
            f"Bearer {SECRET}\r\n\tcontinued".encode(),
            f"Basic {SECRET}".encode(),
            f"Bearer {SECRET[:-1]}".encode(),
        ]
        statuses = []
        for header in cases:
            answer = _raw_request(
                port,
                b"POST /alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + b"Authorization: "
                + header
                + b"\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode(),
                body,
            )
            statuses.append(answer.split(b" ", 2)[1] if answer else b"closed")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("POST", "/alertmanager", body=b"{not json", headers={"Authorization": f"Bearer {SECRET}"})
        assert connection.getresponse().status == 400
        assert all(status in (b"400", b"401", b"431", b"closed") for status in statuses), statuses
        environ = Path(f"/proc/{runner.pid}/environ").read_bytes()
        assert SECRET.encode() not in environ
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)
    text = log_path.read_bytes()
    assert b"listening" in text
    assert b"<redacted>" in text, "no hostile header reached a log line: the cases no longer test redaction"
    assert SECRET.encode() not in text
    assert SECRET[:12].encode() not in text, "a prefix of the token was logged"


@pytest.mark.parametrize(
    ("overrides", "secret", "expected"),
    [
        ({}, "short-token", "auth.token: is shorter than 16 bytes"),
        (
            {"listen": {"host": "0.0.0.0", "port": 9466}, "auth": {"type": "none"}},
            SECRET,
            "auth.type: none is allowed only",
        ),
        ({"listen": {"host": "::", "port": 9466}, "auth": {"type": "none"}}, SECRET, "auth.type: none is allowed only"),
        ({"auth": {"type": "bearer", "token": SECRET}}, SECRET, "secrets are not read from the config file"),
    ],
)
def test_weak_auth_setups_are_refused_with_the_field_and_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any], secret: str, expected: str
) -> None:
    monkeypatch.setenv("DEPMIRROR_TEST_SECRET", secret)
    with pytest.raises(ConfigError) as raised:
        load_config(_config(tmp_path, **overrides))
    assert expected in str(raised.value) and "fix:" in str(raised.value)


def test_no_auth_on_loopback_is_allowed(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, auth={"type": "none"}))
    assert config.auth.type == "none"


def test_without_ansible_playbook_readyz_is_503_and_a_rollback_is_an_error_without_cooldown(tmp_path: Path) -> None:
    """The venv's base Python, through a link in an empty directory, with the library importable but no
    ansible-playbook beside it nor on PATH: the runner says so on /readyz, and each rollback it cannot start
    is an `error` event that holds nothing back."""
    if shutil.which("ansible-playbook", path="/usr/bin:/bin"):
        pytest.skip("ansible-playbook is installed system-wide here")
    lonely = tmp_path / "bin"
    lonely.mkdir()
    python = lonely / "python3"
    python.symlink_to(getattr(sys, "_base_executable", sys.executable))
    playbook = tmp_path / "rollback.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
    config = _config(
        tmp_path,
        mode="act",
        action={"playbook": str(playbook)},
        policy={"on_unknown_health": "delegate", "cooldown_seconds": 300},
    )
    port = yaml.safe_load(config.read_text())["listen"]["port"]
    site_packages = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    source = Path(__file__).resolve().parents[3] / "src"
    env = {
        "DEPMIRROR_TEST_SECRET": SECRET,
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{source}:{site_packages}",
        "HOME": str(tmp_path),
    }
    runner = subprocess.Popen(
        [str(python), "-m", "depmirror.cli", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = _get_until_answered(port, "/readyz")
        assert ready.status == 503 and b"ansible-playbook" in ready.body
        for minute in ("00", "01"):
            body = notification(alert(fingerprint="down", starts_at=f"2026-01-01T00:{minute}:00Z"))
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request(
                "POST", "/alertmanager", body=json.dumps(body), headers={"Authorization": f"Bearer {SECRET}"}
            )
            assert connection.getresponse().status == 202
            _wait_events(tmp_path / "history.db", int(minute) + 1)
        with open_store(tmp_path / "history.db", create=False) as store:
            events = store.events(EventFilter(limit=None))
        assert [(e.kind, e.outcome) for e in events] == [("rollback", "error"), ("rollback", "error")]
        assert "could not be started" in events[0].reason or "not found" in events[0].reason
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)


@dataclass
class _Answer:
    status: int
    body: bytes


def _get_until_answered(port: int, path: str, timeout_s: float = 20.0) -> _Answer:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            response = connection.getresponse()
            return _Answer(response.status, response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _wait_events(store: Path, count: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if store.exists():
            with open_store(store, create=False) as opened:
                if len(opened.events(EventFilter(limit=None))) >= count:
                    return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} events in {store} after {timeout_s}s")
