"""`action.fast_path` in the runner's config: what it builds, and errors that name the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from depmirror.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
GRAPH = str(ROOT / "inventories" / "example" / "graph.yml")


def fast(**fields: Any) -> dict[str, Any]:
    return {"kind": "ansible-runner", "fast_path": {"enabled": True, **fields}}


def test_a_full_fast_path_section_is_read(write_config: Any) -> None:
    config = write_config(
        mode="act",
        graph=GRAPH,
        action=fast(
            collection=str(ROOT),
            prometheus_url="http://127.0.0.1:9090",
            health_interval="1s",
            ssh={"user": "deploy", "key_file": "/etc/depmirror/id", "become": True, "connect_timeout_seconds": 1.5},
            nginx={"location_directives": ["proxy_buffering off"]},
            verify_requests=3,
        ),
    )
    fast_path = config.action.fast_path
    assert fast_path is not None
    assert fast_path.graph == Path(GRAPH) and fast_path.collection == ROOT
    assert fast_path.health_interval_s == 1.0 and fast_path.verify_requests == 3
    assert (fast_path.ssh.user, fast_path.ssh.key_file, fast_path.ssh.become) == ("deploy", "/etc/depmirror/id", True)
    assert fast_path.nginx.location_directives == ("proxy_buffering off",)
    assert fast_path.nginx.conf_dir == "/etc/nginx/depmirror"  # the nginx_upstream role's default


def test_off_unless_enabled(write_config: Any) -> None:
    assert write_config(mode="act", action={"kind": "ansible-runner"}).action.fast_path is None


@pytest.mark.parametrize(
    ("action", "field", "words"),
    [
        (fast(collection=str(ROOT)), "action.fast_path.prometheus_url", "missing"),
        (
            fast(prometheus_url="http://p:9090"),
            "action.fast_path.collection",
            "is not the depmirror.mirroring collection",
        ),
        (
            fast(collection=str(ROOT), prometheus_url="http://p:9090", health_interval="soon"),
            "action.fast_path.health_interval",
            "not a duration",
        ),
        (
            fast(collection=str(ROOT), prometheus_url="http://p:9090", nginx={"http_includes": "conf.d"}),
            "action.fast_path.nginx.http_includes",
            "list of strings",
        ),
        (
            fast(collection=str(ROOT), prometheus_url="http://p:9090", postgresql_timeout_seconds=float("nan")),
            "action.fast_path.postgresql_timeout_seconds",
            "must be a finite number",
        ),
        (
            fast(collection=str(ROOT), prometheus_url="http://p:9090", verify_deadline_seconds=float("inf")),
            "action.fast_path.verify_deadline_seconds",
            "must be a finite number",
        ),
        (
            {
                "kind": "awx",
                "fast_path": {"enabled": True},
                "awx": {"url": "https://awx", "token_env": "DEPMIRROR_TEST_TOKEN", "job_template_id": 1},
            },
            "action.fast_path.enabled",
            "needs action.kind ansible-runner",
        ),
    ],
)
def test_a_bad_fast_path_names_the_field(write_config: Any, action: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        write_config(mode="act", graph=GRAPH, action=action)
    assert raised.value.field == field and words in str(raised.value)
    assert "runner.yml" in str(raised.value)
