from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from depmirror.errors import ConfigError
from depmirror.health.checker import factory

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = str(ROOT / "inventories" / "example" / "graph.yml")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_prometheus_leaves_the_runner_with_unknown_and_no_target() -> None:
    checker = factory({"graph": EXAMPLE, "prometheus_url": f"http://127.0.0.1:{closed_port()}", "timeout": 1})
    view = asyncio.run(checker.check("ledger", "ledger@vm-a1"))
    assert view.failed_instance == "unknown"
    assert view.healthy_targets() == []
    assert "Prometheus unavailable" in view.inputs["warnings"][0]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"prometheus_url": "http://127.0.0.1:9"}, "health.options.graph"),
        ({"graph": EXAMPLE, "prometheus_url": "http://127.0.0.1:9", "interval": "soon"}, "health.options"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, object], field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPMIRROR_PROMETHEUS_URL", raising=False)
    with pytest.raises(ConfigError) as error:
        factory(options)
    assert error.value.field == field
