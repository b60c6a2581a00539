"""A throwaway PostgreSQL cluster for the tests, from Debian's postgresql-15 binaries (no mocks).

`postgres_server` (session) runs initdb in a new temp dir owned by the postgres user (initdb refuses root)
and starts the server on 127.0.0.1 only, on a port chosen free at run time, with its unix socket in that
dir. Under pytest-xdist each worker starts its own cluster (no shared state between worker processes, so
nothing to lock, and each stops what it started); the fixture stops it with `pg_ctl stop -m fast` and
removes the dir, also when a test or the start itself failed. `postgres_database` gives each test a fresh
database (`t_<random>`) and drops it afterwards.

Authentication: the superuser `depmirror` is trusted from 127.0.0.1 and the socket; every other role
needs its password (scram-sha-256), so tests can check what happens with and without one; `ghost` is
trusted and never created.

Skips, saying why, only where Debian's initdb (or, as root, the postgres user) is missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

PG_BIN = Path(os.environ.get("DEPMIRROR_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "depmirror"
HOST = "127.0.0.1"
START_ATTEMPTS = 3
# The cluster is thrown away after the run: fsync buys nothing here and costs seconds.
SERVER_SETTINGS = ("fsync=off", "full_page_writes=off", "max_connections=200", "shared_buffers=32MB")
# GHOST is trusted but never created, so that a test sees the server say that a role does not exist.
GHOST = "ghost"
HBA = f"""\
local all {SUPERUSER} trust
host all {SUPERUSER} {HOST}/32 trust
host all {GHOST} {HOST}/32 trust
local all all scram-sha-256
host all all {HOST}/32 scram-sha-256
"""


@dataclass
class PostgresServer:
    """One running cluster: `url(database)` for libpq, `admin()` for setup as the superuser."""

    root: Path
    port: int
    started_in_s: float = 0.0
    as_postgres: tuple[str, ...] = ()
    databases: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str, user: str = SUPERUSER, password: str | None = None) -> str:
        credentials = quote(user, safe="") if password is None else f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"postgresql://{credentials}@{HOST}:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=HOST, port=self.port, user=SUPERUSER, dbname=database, autocommit=True, connect_timeout=5
        )

    def create_database(self, owner: str = SUPERUSER) -> str:
        name = f"t_{secrets.token_hex(6)}"
        with self.admin() as connection:
            connection.execute(f'CREATE DATABASE {name} OWNER "{owner}"')
        self.databases.append(name)
        return name

    def drop_database(self, name: str) -> None:
        # FORCE: a test that failed may have left a store open on it.
        with self.admin() as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def create_role(self, name: str, password: str) -> None:
        with self.admin() as connection:
            connection.execute(
                f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"  # test data only
            )

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def halt(self) -> None:
        """Stop the server (fast: open sessions are cut), keeping its data for `resume()`."""
        self.pg_ctl("-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start it again on the same port."""
        self.pg_ctl("-o", _server_options(self.root, self.port), "-l", str(self.root / "log"), "-w", "start")

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None and self.pg_ctl("-m", "fast", "-w", "stop", check=False).returncode != 0:
            # pg_ctl could not stop it: the postmaster this fixture started, by its pid (SIGQUIT: immediate).
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PostgresServer:
    """initdb and start a cluster; the caller stops it (`stop()`), which also removes its dir."""
    as_postgres: tuple[str, ...] = ()
    # A short dir under /tmp: the socket path (dir + .s.PGSQL.PORT) must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="dm-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_postgres = ("runuser", "-u", "postgres", "--")
    server = PostgresServer(root=root, port=0, as_postgres=as_postgres)
    began = time.monotonic()
    try:
        subprocess.run(
            [
                *as_postgres,
                str(PG_BIN / "initdb"),
                "-D",
                str(server.data),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        hba = server.data / "pg_hba.conf"
        hba.write_text(HBA)
        if as_postgres:
            shutil.chown(hba, "postgres", "postgres")
        for _ in range(START_ATTEMPTS):
            server.port = _free_port()
            started = server.pg_ctl(
                "-o", _server_options(root, server.port), "-l", str(root / "log"), "-w", "start", check=False
            )
            if started.returncode == 0:
                break
            if server.pid() is not None:  # started but not answering: stop it before trying another port
                server.pg_ctl("-m", "fast", "-w", "stop", check=False)
        else:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start in {START_ATTEMPTS} attempts: {started.stderr}\n{log}")
    except BaseException:
        server.stop()
        raise
    server.started_in_s = time.monotonic() - began
    return server


def _server_options(root: Path, port: int) -> str:
    settings = " ".join(f"-c {setting}" for setting in SERVER_SETTINGS)
    return f"-k {root} -c listen_addresses={HOST} -p {port} {settings}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL here ({PG_BIN / 'initdb'} is missing): apt-get install postgresql-15")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("initdb refuses root and there is no postgres user to run it as: apt-get install postgresql-15")
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
