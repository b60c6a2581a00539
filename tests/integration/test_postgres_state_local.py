"""postgres_state against real PostgreSQL on this machine: a primary and two streaming standbys on loopback.

The movers' SQL, their parsing of psql's answers, pg_promote and the repoint by ALTER SYSTEM, through a real
shell (as sshd runs a command); only the SSH hop is left out (every "host" is this machine). The same steps
on the lab's VMs, through rollback.yml: tests/integration/test_postgres_lab.py.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.integration.health_services import free_port

from depmirror.rollback.postgres_state import SOCKET_DIR, PromotionError, promote, read_offsets

PG_BIN = Path(os.environ.get("DEPMIRROR_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
HOST = "127.0.0.1"


def _as_postgres(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, timeout=timeout)


class LocalShell:
    """sshd's side: the command line run by `sh -c`; every address is this machine."""

    def run(self, address: str, command: str, stdin: str = "", timeout_s: float = 10.0) -> tuple[int, str, str]:
        done = subprocess.run(
            ["sh", "-c", command], input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        return done.returncode, done.stdout, done.stderr


def _settings(port: int) -> str:
    return (
        f"listen_addresses = '{HOST}'\nport = {port}\nunix_socket_directories = '{SOCKET_DIR}'\n"
        "wal_level = replica\nmax_wal_senders = 10\nwal_keep_size = 64MB\nhot_standby = on\n"
        "recovery_target_timeline = 'latest'\nfsync = off\nshared_buffers = 16MB\n"
    )


def _start(data: Path, log: Path) -> None:
    done = _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start")
    assert done.returncode == 0, done.stdout + done.stderr + (log.read_text() if log.exists() else "")


def _sql(port: int, statement: str) -> str:
    done = _as_postgres("psql", "-X", "-A", "-t", "-h", SOCKET_DIR, "-p", str(port), "-d", "postgres", "-c", statement)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@contextlib.contextmanager
def _cluster() -> Iterator[dict[str, tuple[Path, int]]]:
    """name -> (data dir, port): `p` primary, `s1` and `s2` standbys streaming from it."""
    if not (PG_BIN / "initdb").exists() or os.geteuid() != 0 or not Path(SOCKET_DIR).is_dir():
        pytest.skip(f"needs root, Debian's PostgreSQL in {PG_BIN} and {SOCKET_DIR}")
    root = Path(tempfile.mkdtemp(prefix="depmirror-pgstate-"))
    postgres = pwd.getpwnam("postgres")
    os.chown(root, postgres.pw_uid, postgres.pw_gid)
    nodes = {name: (root / name, free_port()) for name in ("p", "s1", "s2")}
    try:
        data, port = nodes["p"]
        done = _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=peer")
        assert done.returncode == 0, done.stderr
        (data / "postgresql.conf").write_text(_settings(port))
        (data / "pg_hba.conf").write_text(
            f"local all postgres peer\nhost replication postgres {HOST}/32 trust\nhost all postgres {HOST}/32 trust\n"
        )
        _start(data, root / "p.log")
        for name in ("s1", "s2"):
            standby, standby_port = nodes[name]
            done = _as_postgres(
                str(PG_BIN / "pg_basebackup"),
                "-h",
                HOST,
                "-p",
                str(port),
                "-U",
                "postgres",
                "-D",
                str(standby),
                "-X",
                "stream",
            )
            assert done.returncode == 0, done.stderr
            (standby / "postgresql.conf").write_text(_settings(standby_port))
            (standby / "standby.signal").touch()
            (standby / "postgresql.auto.conf").write_text(
                f"primary_conninfo = 'host={HOST} port={port} user=postgres application_name={name}'\n"
            )
            subprocess.run(["chown", "-R", "postgres:postgres", str(standby)], check=True)
            _start(standby, root / f"{name}.log")
        yield nodes
    finally:
        for data, _port in nodes.values():
            if (data / "postmaster.pid").exists():
                _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _wait(check: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_promote_the_most_advanced_standby_and_the_other_follows_it_on_the_new_timeline() -> None:
    shell = LocalShell()
    with _cluster() as nodes:
        p_port, s1_port, s2_port = nodes["p"][1], nodes["s1"][1], nodes["s2"][1]
        _sql(p_port, "CREATE TABLE t (id int)")
        _sql(p_port, "INSERT INTO t SELECT generate_series(1, 1000)")
        lsn = int(_sql(p_port, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"))
        survivors = {"s1": (HOST, s1_port), "s2": (HOST, s2_port)}
        _wait(lambda: all(v >= lsn for v in read_offsets(shell, survivors, 5).values()), "both standbys to catch up")
        # s2 stops receiving: s1 is then the most advanced when the primary dies.
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(nodes["s2"][0]), "-m", "fast", "-w", "stop")
        _sql(p_port, "INSERT INTO t SELECT generate_series(1001, 2000)")
        moved = int(_sql(p_port, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"))
        _wait(lambda: read_offsets(shell, {"s1": (HOST, s1_port)}, 5).get("s1", 0) >= moved, "s1 to receive")
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(nodes["p"][0]), "-m", "immediate", "-w", "stop")
        _start(nodes["s2"][0], nodes["s2"][0].parent / "s2.log")

        offsets = read_offsets(shell, {**survivors, "gone": (HOST, p_port)}, 5)
        assert set(offsets) == {"s1", "s2"}, "the dead primary answers no position"
        assert offsets["s1"] > offsets["s2"]
        assert promote(shell, (HOST, s1_port), {"s2": (HOST, s2_port)}, 10) == []
        assert _sql(s1_port, "SELECT pg_is_in_recovery()") == "f"
        assert _sql(s1_port, "SELECT count(*) FROM t") == "2000"
        assert "port=" + str(s1_port) in _sql(s2_port, "SHOW primary_conninfo")
        assert "application_name=s2" in _sql(s2_port, "SHOW primary_conninfo")
        _sql(s1_port, "INSERT INTO t VALUES (2001)")
        _wait(lambda: _sql(s2_port, "SELECT count(*) FROM t") == "2001", "s2 to stream from the new primary")
        sender = _sql(s2_port, "SELECT sender_port || ':' || status FROM pg_stat_wal_receiver")
        assert sender == f"{s1_port}:streaming"


def test_promoting_a_server_that_is_already_primary_fails_and_changes_nothing() -> None:
    shell = LocalShell()
    with _cluster() as nodes:
        with pytest.raises(PromotionError, match="did not become a primary"):
            promote(shell, (HOST, nodes["p"][1]), {}, 5)
        with psycopg.connect(host=HOST, port=nodes["p"][1], user="postgres", dbname="postgres") as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
