from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from depmirror.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = str(ROOT / "inventories" / "example" / "graph.yml")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_prometheus_is_reported_not_fatal(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"instances": [{"dependency": "ledger", "host": "vm-a1", "role": "primary"}]}))
    url = f"http://127.0.0.1:{closed_port()}"
    assert main(["health", "--graph", EXAMPLE, "--prometheus", url, "--state", str(state), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    [instance] = report["instances"]
    assert instance["instance"] == "ledger@vm-a1"
    assert instance["verdict"] == "unknown" and instance["score"] is None
    assert "probe_success" in instance["queries"]["up"]
    assert "Prometheus unavailable" in err


def test_the_table_names_every_instance_and_its_verdict(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"instances": [{"dependency": "ledger", "host": "vm-b1", "role": "mirror"}]}))
    url = f"http://127.0.0.1:{closed_port()}"
    assert main(["health", "--graph", EXAMPLE, "--prometheus", url, "--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert "ledger@vm-b1" in out and "unknown" in out and "zone-b" in out


def test_a_missing_prometheus_url_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--graph", EXAMPLE, "--prometheus", ""]) == 2
    assert "--prometheus" in capsys.readouterr().err
