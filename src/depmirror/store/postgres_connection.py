"""The PostgreSQL store's connections: a small pool, one transaction per call, the schema made current on
open, and every failure said as a StoreError naming the URL without its password."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from depmirror.store.base import StoreError
from depmirror.store.postgres_failures import explain
from depmirror.store.postgres_rows import loads
from depmirror.store.postgres_schema import SCHEMA_HEAD, VERSION_TABLE
from depmirror.store.postgres_url import PostgresURL

# libpq's connect_timeout (whole seconds, 2 at least) unless the URL or $PGCONNECT_TIMEOUT sets one.
CONNECT_TIMEOUT_S = 5
# The pool: one connection kept open, up to four (the runner's webhook, worker, readiness and a spare).
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 4
# How long a call waits for a free (or new) connection before it says why there is none: long enough
# for a server restart or a busy moment, short enough for Alertmanager's webhook timeout (10 s).
POOL_TIMEOUT_S = 5.0
# check_writable (readiness) waits this long for a connection and for the write locks.
WRITABLE_CHECK_TIMEOUT_S = 0.5
# A transaction that lost a deadlock (two runners enqueueing the same alerts in another order) runs again.
WRITE_ATTEMPTS = 5
APPLICATION_NAME = "depmirror"

T = TypeVar("T")
Cursor = psycopg.Cursor[DictRow]
_READ_ONLY_FIX = "point the store at the primary (add target_session_attrs=read-write to the URL)"


class Connections:
    """Opens (and migrates) the store's database; then hands out transactions from the pool."""

    def __init__(self, target: PostgresURL, *, create: bool, busy_timeout_s: float) -> None:
        self.target = target
        self._busy_timeout_s = busy_timeout_s
        self._kwargs = _connect_kwargs(target.raw)
        self._prepare_schema(create=create)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            target.raw,
            min_size=POOL_MIN_SIZE,
            max_size=POOL_MAX_SIZE,
            kwargs={**self._kwargs, "autocommit": True},
            configure=self._configure,
            # A connection the server dropped (a restart, a failover) is replaced before it is handed out.
            check=ConnectionPool.check_connection,
            timeout=POOL_TIMEOUT_S,
            name="depmirror-store",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
        except PoolTimeout as error:
            self._pool.close(timeout=0)
            raise self._diagnose() from error

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        """A connection of its own, outside the pool (schema upgrades, diagnosis)."""
        return psycopg.connect(self.target.raw, **self._kwargs, autocommit=autocommit)

    def _configure(self, connection: psycopg.Connection[Any]) -> None:
        set_json_loads(loads, connection)
        # As SQLite's busy timeout; lock_timeout 0 would mean "wait forever", a busy timeout of 0 "do not wait".
        lock_ms = max(1, round(self._busy_timeout_s * 1000))
        connection.execute("SELECT set_config('lock_timeout', %s, false)", (f"{lock_ms}ms",))

    @contextmanager
    def session(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection(timeout=timeout) as connection:
                yield connection
        except PoolTimeout as error:
            raise self._diagnose(waited_s=timeout) from error
        except psycopg.Error as error:
            explained = explain(self.target, error, busy_timeout_s=self._busy_timeout_s)
            if explained is error:
                raise
            raise explained from error

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[DictRow]:
        with self.session() as connection, connection.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(sql, params).fetchall()

    def read_many(self, work: Callable[[Cursor], T]) -> T:
        """Several reads on one pooled connection: one checkout for all of them (the runner's pass)."""
        with self.session() as connection, connection.cursor(row_factory=dict_row) as cursor:
            return work(cursor)

    def write(self, work: Callable[[Cursor], T]) -> T:
        """Run `work` in one transaction, committed when this returns; again from the start if it lost a
        deadlock (it must not have effects outside the database)."""
        attempt = 1
        while True:
            try:
                with (
                    self.session() as connection,
                    connection.transaction(),
                    connection.cursor(row_factory=dict_row) as cursor,
                ):
                    return work(cursor)
            except (errors.DeadlockDetected, errors.SerializationFailure):
                if attempt >= WRITE_ATTEMPTS:
                    raise
                attempt += 1

    def probe_writable(self) -> None:
        """A transaction that takes the table locks an append and an enqueue take, waits at most 0.5 s for
        them, and rolls back. Says why not: no connection, a read-only server (a standby), a lock holder."""
        limit = f"{round(WRITABLE_CHECK_TIMEOUT_S * 1000)}ms"
        with (
            self.session(timeout=WRITABLE_CHECK_TIMEOUT_S) as connection,
            connection.transaction(force_rollback=True),
        ):
            connection.execute("SELECT set_config('statement_timeout', %s, true)", (limit,))
            connection.execute("SELECT set_config('lock_timeout', %s, true)", (limit,))
            row = connection.execute("SELECT current_setting('transaction_read_only') = 'on'").fetchone()
            if row is not None and row[0]:
                raise self.target.error(
                    "the server is read-only (a standby, or default_transaction_read_only is on)", _READ_ONLY_FIX
                )
            try:
                connection.execute("LOCK TABLE events, alert_queue, actions IN ROW EXCLUSIVE MODE")
            except (errors.LockNotAvailable, errors.QueryCanceled) as error:
                raise self.target.error(
                    f"another session has held a lock on the store's tables for more than"
                    f" {WRITABLE_CHECK_TIMEOUT_S:g} s ({_one_line(error)})",
                    "find it in pg_locks and pg_stat_activity; wait for it or end it",
                ) from error

    def close(self) -> None:
        self._pool.close()

    def _diagnose(self, waited_s: float | None = None) -> StoreError:
        """Why no pooled connection came: one direct connection attempt says what libpq says."""
        try:
            self.connect(autocommit=True).close()
        except psycopg.Error as error:
            explained = explain(self.target, error, busy_timeout_s=self._busy_timeout_s)
            if isinstance(explained, StoreError):
                return explained
            return self.target.error(f"cannot connect: {_one_line(error)}")
        waited = POOL_TIMEOUT_S if waited_s is None else waited_s
        return self.target.error(
            f"all {POOL_MAX_SIZE} of this process's connections stayed busy for more than {waited:g} s",
            "look for slow queries or locks in pg_stat_activity",
        )

    # --- schema -------------------------------------------------------------------------------------
    def _prepare_schema(self, *, create: bool) -> None:
        try:
            with self.connect(autocommit=True) as connection:
                version = _schema_version(connection)
        except psycopg.Error as error:
            raise self._failed(error, "cannot read the schema version") from error
        if version == SCHEMA_HEAD:
            return
        if version is None and not create:
            raise self.target.error(
                "no depmirror store in this database",
                "check --store, $DEPMIRROR_STORE or the runner's store setting; the first write creates a store",
            )
        # Alembic is imported only now: most opens find the schema current, and it costs ~0.3 s to import.
        from depmirror.store import postgres_migrate

        if version is not None and not postgres_migrate.is_known(version):
            raise self.target.error(
                f"the store's schema is at revision {version}, newer than this depmirror knows ({SCHEMA_HEAD})",
                "upgrade depmirror here to the version the other runners use",
            )
        try:
            postgres_migrate.upgrade(self.connect)
        except Exception as error:  # psycopg's, or SQLAlchemy's wrapping psycopg's in `.orig`
            raise self._failed(getattr(error, "orig", None) or error, "schema upgrade failed") from error

    def _failed(self, error: BaseException, doing: str) -> StoreError:
        if isinstance(error, Exception):
            explained = explain(self.target, error, busy_timeout_s=self._busy_timeout_s)
            if isinstance(explained, StoreError):
                return explained
        return self.target.error(f"{doing}: {_one_line(error)}")


def _schema_version(connection: psycopg.Connection[Any]) -> str | None:
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,)).fetchone()
    if row is None or not row[0]:
        return None
    found = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    return None if found is None else str(found[0])


def _connect_kwargs(url: str) -> dict[str, Any]:
    """What depmirror adds to the URL's own parameters (which win): a connect timeout and a name."""
    given = conninfo_to_dict(url)
    kwargs: dict[str, Any] = {}
    if "connect_timeout" not in given and not os.environ.get("PGCONNECT_TIMEOUT"):
        kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
    if "application_name" not in given and not os.environ.get("PGAPPNAME"):
        kwargs["application_name"] = APPLICATION_NAME
    return kwargs


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
