"""The fast path's PostgreSQL and `stateful:` options in the runner's config (issue 19): defaults, values,
and a bad value named with its field, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from depmirror.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
GRAPH = str(ROOT / "inventories" / "example" / "graph.yml")


def _action(**fields: Any) -> dict[str, Any]:
    return {
        "kind": "ansible-runner",
        "fast_path": {"enabled": True, "collection": str(ROOT), "prometheus_url": "http://p:9090", **fields},
    }


def test_defaults_are_those_of_rollback_yml(write_config: Any) -> None:
    fast = write_config(mode="act", graph=GRAPH, action=_action()).action.fast_path
    assert (fast.postgres_max_lag_bytes, fast.postgres_timeout_s) == (0, 10.0)
    assert (fast.stateful_max_lag, fast.stateful_timeout_s) == (0, 10.0)


def test_values_are_read(write_config: Any) -> None:
    fast = write_config(
        mode="act",
        graph=GRAPH,
        action=_action(
            postgresql_max_lag_bytes=65536,
            postgresql_timeout_seconds=30,
            stateful_max_lag=5,
            stateful_timeout_seconds=2.5,
        ),
    ).action.fast_path
    assert (fast.postgres_max_lag_bytes, fast.postgres_timeout_s) == (65536, 30.0)
    assert (fast.stateful_max_lag, fast.stateful_timeout_s) == (5, 2.5)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"postgresql_timeout_seconds": 0.5}, "postgresql_timeout_seconds", "number >= 1.0"),
        ({"postgresql_timeout_seconds": "10s"}, "postgresql_timeout_seconds", "number"),
        ({"postgresql_timeout_seconds": True}, "postgresql_timeout_seconds", "number"),
        ({"postgresql_max_lag_bytes": -1}, "postgresql_max_lag_bytes", "integer"),
        ({"postgresql_max_lag_bytes": 1.5}, "postgresql_max_lag_bytes", "integer"),
        ({"postgresql_max_lag_bytes": 2**70}, "postgresql_max_lag_bytes", "integer"),
        ({"stateful_max_lag": "0"}, "stateful_max_lag", "integer"),
        ({"stateful_timeout_seconds": -1}, "stateful_timeout_seconds", "number"),
    ],
)
def test_a_bad_value_names_its_field(write_config: Any, fields: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        write_config(mode="act", graph=GRAPH, action=_action(**fields))
    assert raised.value.field == f"action.fast_path.{field}" and words in str(raised.value)
