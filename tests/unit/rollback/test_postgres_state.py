"""The PostgreSQL mover's pure parts and its commands as the remote shell receives them.

The steps themselves (fence, pg_promote, repoint, zero loss) run against real PostgreSQL standbys on the
lab: tests/integration/test_postgres_lab.py.
"""

from __future__ import annotations

import shlex

import pytest

from depmirror.rollback.flow import Health, lag_exclusions, prepare_rollback
from depmirror.rollback.postgres_state import (
    PromotionError,
    conninfo_with,
    fence,
    fence_for,
    migrate_for,
    offsets_for,
    parse_offset,
    promote,
    psql_command,
    read_offsets,
)
from depmirror.rollback.remote import RemoteError


class Scripted:
    """Answers per (address, first SQL word) with what psql would print; records every command line."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, list[str]]] = []
        self.down: set[str] = set()

    def run(self, address: str, command: str, stdin: str = "", timeout_s: float = 10.0) -> tuple[int, str, str]:
        argv = shlex.split(command)
        self.calls.append((address, argv))
        if address in self.down:
            raise RemoteError(f"cannot open SSH to root@{address}: timed out")
        statements = [argv[i + 1] for i, word in enumerate(argv) if word == "-c"]
        key = statements[0].split()[0] if statements else argv[0]
        rc, out = self.answers.get((address, key), (0, ""))
        return rc, out, "" if rc == 0 else "psql: error"


def test_psql_runs_as_postgres_on_the_local_socket_with_each_statement_its_own_argument() -> None:
    argv = shlex.split(psql_command(5544, "ALTER SYSTEM SET primary_conninfo = 'host=x'", "SELECT 1; $(id)"))
    assert argv[:4] == ["runuser", "-u", "postgres", "--"]
    assert argv[argv.index("-p") + 1] == "5544" and argv[argv.index("-h") + 1] == "/var/run/postgresql"
    assert [argv[i + 1] for i, w in enumerate(argv) if w == "-c"] == [
        "ALTER SYSTEM SET primary_conninfo = 'host=x'",
        "SELECT 1; $(id)",
    ]


@pytest.mark.parametrize(
    ("answer", "offset"),
    [
        ("t|16777216\n", 16777216),
        ("f|100", 100),
        ("t|42.000", 42),  # numeric output of pg_wal_lsn_diff on some versions
        ("\n\nt|7\n", 7),
        ("t|", None),
        ("t|-5", None),
        ("t|1e9", None),
        ("x|5", None),
        ("t|5|6", None),
        ("", None),
        ("t|" + "9" * 40, None),
        ("t|\uff11\uff12", None),  # fullwidth digits
        ("ERROR: $(id)", None),
    ],
)
def test_only_a_well_formed_answer_is_an_offset(answer: str, offset: int | None) -> None:
    assert parse_offset(answer) == offset


def test_offsets_of_the_survivors_that_answered_feed_the_same_lag_gate_as_redis() -> None:
    runner = Scripted(
        {
            ("10.0.0.2", "SELECT"): (0, "t|5000\n"),
            ("10.0.0.3", "SELECT"): (0, "t|4000\n"),
            ("10.0.0.4", "SELECT"): (2, ""),
        }
    )
    runner.down.add("10.0.0.5")
    survivors = {"b": ("10.0.0.2", 5544), "c": ("10.0.0.3", 5544), "d": ("10.0.0.4", 5544), "e": ("10.0.0.5", 5544)}
    offsets = read_offsets(runner, survivors, 1.0)
    assert offsets == {"b": 5000, "c": 4000}
    assert set(lag_exclusions(offsets, 0)) == {"c"}
    assert lag_exclusions(offsets, 1000) == {}


def test_conninfo_keeps_the_roles_keys_and_moves_host_and_port() -> None:
    current = "user=rep passfile=/var/lib/depmirror/pg/.pgpass host=10.0.0.1 port=5544 application_name=vm-b1"
    assert conninfo_with(current, "10.0.0.2", 5544) == (
        "host=10.0.0.2 port=5544 user=rep passfile=/var/lib/depmirror/pg/.pgpass application_name=vm-b1"
    )


@pytest.mark.parametrize(
    "current", ["host='a b' port=1", "host=x port=1 password='p q'", "host=x\\ y", "dbname=$(id) x", "HOST=x"]
)
def test_a_conninfo_it_cannot_read_safely_is_refused_not_guessed(current: str) -> None:
    with pytest.raises(ValueError, match="cannot rewrite safely"):
        conninfo_with(current, "10.0.0.2", 5544)


def test_promote_then_repoint_writes_a_quoted_literal_and_reloads() -> None:
    runner = Scripted(
        {
            ("10.0.0.2", "SELECT"): (0, "t\nf\n"),
            ("10.0.0.3", "SELECT"): (0, "user=rep application_name=vm-c1 host=10.0.0.1 port=5544\n"),
        }
    )
    missed = promote(runner, ("10.0.0.2", 5544), {"vm-c1": ("10.0.0.3", 5544)}, 5.0)
    assert missed == []
    (alter,) = [argv for address, argv in runner.calls if address == "10.0.0.3" and "pg_reload_conf" in " ".join(argv)]
    statements = [alter[i + 1] for i, w in enumerate(alter) if w == "-c"]
    assert statements == [
        "ALTER SYSTEM SET primary_conninfo = 'host=10.0.0.2 port=5544 user=rep application_name=vm-c1'",
        "SELECT pg_reload_conf()",
    ]


def test_a_target_that_stays_in_recovery_is_a_failed_promotion() -> None:
    runner = Scripted({("10.0.0.2", "SELECT"): (0, "f\nt\n")})
    with pytest.raises(PromotionError, match="did not become a primary"):
        promote(runner, ("10.0.0.2", 5544), {}, 5.0)
    runner.down.add("10.0.0.2")
    with pytest.raises(PromotionError, match="cannot promote"):
        promote(runner, ("10.0.0.2", 5544), {}, 5.0)


def test_a_replica_that_cannot_be_repointed_is_reported_not_fatal() -> None:
    runner = Scripted({("10.0.0.2", "SELECT"): (0, "t\nf\n"), ("10.0.0.3", "SELECT"): (0, "host='odd value'\n")})
    runner.down.add("10.0.0.4")
    assert promote(runner, ("10.0.0.2", 5544), {"c": ("10.0.0.3", 5544), "d": ("10.0.0.4", 5544)}, 5.0) == ["c", "d"]


def test_fence_stops_the_unit_and_an_unreachable_host_is_false_not_an_error() -> None:
    runner = Scripted({})
    assert fence(runner, "10.0.0.1", "depmirror-orders-db.service", 3.0) is True
    assert " ".join(runner.calls[-1][1]) == (
        "systemctl stop --no-block depmirror-orders-db.service; "
        "systemctl kill --signal=SIGKILL depmirror-orders-db.service; systemctl disable depmirror-orders-db.service"
    )
    runner.down.add("10.0.0.1")
    assert fence(runner, "10.0.0.1", "depmirror-orders-db.service", 3.0) is False


def _item(**more: object) -> dict[str, object]:
    def instance(host: str, zone: str, address: str, role: str) -> dict[str, object]:
        return {"host": host, "zone": zone, "address": address, "port": 5544, "role": role}

    return {
        "name": "orders-db",
        "kind": "postgresql",
        "mode": "active-passive",
        "port": 5544,
        "primary": {"host": "a", "address": "10.0.0.1", "port": 5544},
        "instances": [
            instance("a", "z1", "10.0.0.1", "primary"),
            instance("b", "z2", "10.0.0.2", "standby"),
            instance("c", "z3", "10.0.0.3", "standby"),
        ],
        **more,
    }


def test_the_fast_path_entry_points_promote_the_most_advanced_after_fencing_the_old_primary() -> None:
    runner = Scripted(
        {
            ("10.0.0.2", "SELECT"): (0, "t|4000\n"),
            ("10.0.0.3", "SELECT"): (0, "t|5000\n"),
        }
    )
    health = Health({"b": 1.0, "c": 1.0}, {})
    first = prepare_rollback([_item()], "orders-db", "a", health, unhealthy_below=0.5)
    assert first["target"]["host"] == "b"  # by name, before the positions are known
    offsets = offsets_for(runner, first, 1.0)
    assert offsets == {"b": 4000, "c": 5000}
    decided = prepare_rollback([_item()], "orders-db", "a", health, unhealthy_below=0.5, offsets=offsets)
    assert decided["target"]["host"] == "c"
    runner.calls.clear()
    runner.answers[("10.0.0.3", "SELECT")] = (0, "t\nf\n")
    runner.answers[("10.0.0.2", "SELECT")] = (0, "user=rep application_name=b host=10.0.0.1 port=5544\n")
    assert fence_for(runner, decided, unit="depmirror-orders-db.service", timeout_s=1.0) is True
    assert migrate_for(runner, decided, timeout_s=1.0) == []
    visited = [address for address, _ in runner.calls]
    assert visited[0] == "10.0.0.1" and "10.0.0.1" not in visited[1:], "the old primary: fenced, nothing else"
    assert visited.index("10.0.0.3") < visited.index("10.0.0.2"), "promote first, then repoint"
