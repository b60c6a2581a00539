"""What adjust refuses before it touches a host, and the probes it runs (the mirror role's asserts and waits)."""

from __future__ import annotations

import ast
import shlex

import pytest

from depmirror.errors import DepmirrorError
from depmirror.frontends.pyinfra.adjust import _refuse_orphan_replicas
from depmirror.frontends.pyinfra.operations import readiness_probe


def item(**fields: object) -> dict[str, object]:
    return {"dependency": "session-cache", "kind": "redis", "role": "standby", "primary_address": "", **fields}


@pytest.mark.parametrize("fields", [{"primary_port": 0}, {"primary_address": "198.18.0.11", "primary_port": None}])
def test_a_redis_replica_without_its_primary_is_refused_naming_it_and_its_vm(fields: dict[str, object]) -> None:
    with pytest.raises(DepmirrorError) as raised:
        _refuse_orphan_replicas({"vm-b1": [item(**fields)]})
    assert "session-cache is a Redis standby on vm-b1" in str(raised.value) and "fix:" in str(raised.value)


def test_primaries_and_non_redis_mirrors_need_no_primary_address() -> None:
    _refuse_orphan_replicas({"vm-a1": [item(role="primary", primary_port=0), item(kind="http", primary_port=0)]})


def test_each_kind_is_probed_as_the_role_waits_for_it_and_the_wait_is_bounded() -> None:
    redis = readiness_probe("redis", 6380, "standby", "/", 30)
    assert "master_link_status:up" in redis and "seq 30" in redis and "-p 6380" in redis
    assert "role:master" in readiness_probe("redis", 6380, "primary", "/", 30)
    http = readiness_probe("http", 8081, "mirror", "/healthz", 5)
    assert "http://127.0.0.1:8081/healthz" in http and "range(5)" in http and "== 200" in http
    assert "create_connection(('127.0.0.1', 7000)" in shlex.split(readiness_probe("tcp", 7000, "mirror", "/", 5))[2]


@pytest.mark.parametrize("path", ["/'; rm -rf / #", "/'+__import__('os').system('id')+'", '/"$(id)"\n'])
def test_a_hostile_health_path_is_only_ever_the_url_string(path: str) -> None:
    argv = shlex.split(readiness_probe("http", 8081, "mirror", path, 5))
    assert argv[:2] == ["python3", "-c"] and len(argv) == 3, "the shell must see one program argument"
    tree = ast.parse(argv[2])
    (url,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "url"]
    assert isinstance(url, ast.Constant) and url.value == f"http://127.0.0.1:8081{path}"
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert "system" not in calls


def test_a_missing_directory_is_made_with_its_mode_on_every_parent_it_creates() -> None:
    from depmirror.frontends.pyinfra.facts import FileState
    from depmirror.frontends.pyinfra.operations import _directory

    (made,) = [command.get_raw_value() for command in _directory("/var/lib/depmirror/ledger", None, "750")]
    assert made == "umask 027 && mkdir -p -m 750 /var/lib/depmirror/ledger"
    (fixed,) = [c.get_raw_value() for c in _directory("/var/lib/depmirror/ledger", FileState("755", None), "750")]
    assert fixed == "chmod 750 /var/lib/depmirror/ledger"
    assert list(_directory("/var/lib/depmirror/ledger", FileState("750", None), "750")) == []
