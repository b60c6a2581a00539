"""`depmirror serve` with `tls:` answers Alertmanager over HTTPS only, with the configured certificate."""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from tests.fakes.webhook import free_port

TOKEN = "tls-test-token-0123456789"


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "runner.crt", directory / "runner.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_the_runner_serves_https_with_its_certificate_and_refuses_plain_http(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    port = free_port()
    (tmp_path / "runner.yml").write_text(
        yaml.safe_dump(
            {
                "listen": {"host": "127.0.0.1", "port": port},
                "tls": {"cert": str(cert), "key": str(key)},
                "auth": {"type": "bearer", "token_env": "DEPMIRROR_RUNNER_TOKEN"},
                "store": "history.db",
                "dependencies": {"payments": ["vm-a1", "vm-b1"]},
                "mode": "shadow",
            }
        )
    )
    log = (tmp_path / "runner.log").open("wb")
    runner = subprocess.Popen(
        [sys.executable, "-m", "depmirror.cli", "serve", "--config", str(tmp_path / "runner.yml")],
        env={**os.environ, "DEPMIRROR_RUNNER_TOKEN": TOKEN},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=trusted, timeout=2) as ready:
                    assert ready.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, (tmp_path / "runner.log").read_text()
                time.sleep(0.2)

        body = {
            "version": "4",
            "status": "firing",
            "receiver": "depmirror",
            "groupKey": "{}",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": "DepmirrorPrimaryDown",
                        "dependency": "payments",
                        "instance": "payments@vm-a1",
                    },
                    "startsAt": datetime.now(UTC).isoformat(),
                    "fingerprint": "0123456789abcdef",
                }
            ],
        }
        request = urllib.request.Request(
            f"https://127.0.0.1:{port}/alertmanager",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )
        with urllib.request.urlopen(request, context=trusted, timeout=5) as answer:
            assert answer.status == 202

        with pytest.raises(urllib.error.URLError) as untrusted:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ssl.create_default_context(), timeout=2)
        assert "CERTIFICATE_VERIFY_FAILED" in str(untrusted.value)
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)
