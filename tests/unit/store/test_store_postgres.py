"""What only the PostgreSQL store has, on a real server (tests/postgres_server.py): its URLs and credentials,
its errors, its migrations, the append-only trigger seen through SQL, and several stores (several runners)
on one database at once. The Store contract runs on both backends in test_store_contract.py."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.postgres_server import GHOST, PostgresServer

from depmirror.store import (
    EnqueueResult,
    Event,
    EventFilter,
    QueuedAlert,
    Store,
    StoreError,
    open_store,
    postgres_migrate,
)
from depmirror.store.postgres import PostgresStore
from depmirror.store.postgres_schema import SCHEMA_HEAD, VERSION_TABLE

ROOT = Path(__file__).parents[3]
DEPMIRROR = Path(sys.executable).with_name("depmirror")
PASSWORD = "Pw-s3cr%t@store"  # %, @: must be percent-encoded in a URL, and never shown decoded or not
ROLE = "runner_pw"


def _alert(fingerprint: str, **kw: Any) -> QueuedAlert:
    return QueuedAlert(
        fingerprint=fingerprint,
        starts_at=str(kw.pop("starts_at", "2026-01-01T00:00:00Z")),
        status=kw.pop("status", "firing"),
        dependency=str(kw.pop("dependency", "payments")),
        instance=str(kw.pop("instance", "payments-a")),
        **kw,
    )


def _no_secret(text: str) -> None:
    assert PASSWORD not in text
    assert "s3cr" not in text  # neither percent-encoded nor a piece of it


@pytest.fixture
def store(postgres_database: str) -> Iterator[Store]:
    with open_store(postgres_database) as opened:
        yield opened


@pytest.fixture
def password_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A database owned by a role that must give its password; yields the database name."""
    with contextlib.suppress(psycopg.errors.DuplicateObject):  # made by an earlier test of this worker
        postgres_server.create_role(ROLE, PASSWORD)
    name = postgres_server.create_database(owner=ROLE)
    try:
        yield name
    finally:
        postgres_server.drop_database(name)


# --- opening: URLs, credentials, errors -----------------------------------------------------------------
def test_open_store_takes_both_url_spellings_and_the_environment(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(postgres_database) as store:
        assert isinstance(store, PostgresStore) and store.url == postgres_database
        store.append_event(Event(kind="rollback", dependency="a", outcome="succeeded"))
    with open_store(postgres_database.replace("postgresql://", "postgres://", 1)) as store:
        assert len(store.events()) == 1
    monkeypatch.setenv("DEPMIRROR_STORE", postgres_database)
    with open_store() as store:
        assert isinstance(store, PostgresStore) and len(store.events()) == 1


def test_a_password_in_the_url_works_and_is_never_shown(
    postgres_server: PostgresServer, password_database: str
) -> None:
    url = postgres_server.url(password_database, user=ROLE, password=PASSWORD)
    assert "%25" in url and "%40" in url
    with open_store(url) as store:
        assert store.url == postgres_server.url(password_database, user=ROLE)
        _no_secret(store.url)
        store.append_event(Event(kind="rollback", dependency="a", outcome="succeeded"))
        assert store.events()[0].id is not None
    wrong = postgres_server.url(password_database, user=ROLE, password=PASSWORD + "x")
    with pytest.raises(StoreError) as failed:
        open_store(wrong)
    message = str(failed.value)
    _no_secret(message)
    assert failed.value.file == store.url
    assert "authentication failed" in message and "PGPASSFILE" in message and "\n" not in message


def test_passwords_from_pgpassfile_and_pgpassword(
    postgres_server: PostgresServer, password_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_server.url(password_database, user=ROLE)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    with pytest.raises(StoreError, match="asks for a password and none was given") as failed:
        open_store(url)
    assert failed.value.file == url
    passfile = tmp_path / "pgpass"
    escaped = PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
    passfile.write_text(f"127.0.0.1:{postgres_server.port}:{password_database}:{ROLE}:{escaped}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    with open_store(url) as store:
        assert store.url == url
        store.check_writable()
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    with open_store(url) as store:
        assert store.events() == []


def test_a_server_that_is_down_is_one_line_naming_the_url_and_the_fix(
    postgres_server: PostgresServer,
) -> None:
    down = postgres_server.url("depmirror", user=ROLE, password=PASSWORD).replace(
        f":{postgres_server.port}/", f":{_closed_port()}/"
    )
    began = time.monotonic()
    with pytest.raises(StoreError) as failed:
        open_store(down)
    assert time.monotonic() - began < 5
    message = str(failed.value)
    _no_secret(message)
    assert message.startswith(f"postgresql://{ROLE}@127.0.0.1:")
    assert "cannot reach the server" in message and "Connection refused" in message
    assert "fix: check that PostgreSQL runs" in message and "\n" not in message


def test_a_missing_database_or_role_says_how_to_create_it(postgres_server: PostgresServer) -> None:
    with pytest.raises(StoreError, match=r'database "t_missing" does not exist .*createdb -O depmirror t_missing'):
        open_store(postgres_server.url("t_missing"))
    with pytest.raises(StoreError, match=r'role "ghost" does not exist .*createuser'):
        open_store(postgres_server.url("postgres", user=GHOST))


def test_an_unreadable_url_is_refused_before_connecting() -> None:
    with pytest.raises(StoreError, match="raw '/'") as failed:
        open_store("postgresql://u:pa/ss-word@127.0.0.1:1/db")
    assert "pa/ss" not in str(failed.value) and "ss-word" not in str(failed.value)
    with pytest.raises(StoreError, match="not a PostgreSQL URL") as failed:
        open_store("postgresql://u:secretword@127.0.0.1:1/db?bogus=1")
    assert "secretword" not in str(failed.value)


def test_the_cli_prints_one_line_and_exits_2_without_the_password(postgres_server: PostgresServer) -> None:
    down = postgres_server.url("depmirror", user=ROLE, password=PASSWORD).replace(
        f":{postgres_server.port}/", f":{_closed_port()}/"
    )
    env = {k: v for k, v in os.environ.items() if k != "DEPMIRROR_STORE"}
    done = subprocess.run(
        [str(DEPMIRROR), "history", "--store", down], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "cannot reach the server" in lines[0] and "Traceback" not in done.stderr
    _no_secret(done.stderr)


def test_history_json_is_the_same_on_both_backends(postgres_database: str, tmp_path: Path) -> None:
    """`depmirror history --format json` prints the same bytes from SQLite and from PostgreSQL."""
    when = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    events = [
        Event(
            kind="rollback",
            dependency="payments",
            instance="payments-a",
            target="payments-b",
            outcome="succeeded",
            time=when,
            trigger={"type": "alert", "fingerprint": "abc", "starts_at": "2026-03-01T11:59:00Z"},
            inputs={"health": {"payments-b": 0.97, "payments-a": 0.1}, "zz": [{"b": 1, "a": None}]},
            decision="act",
            reason="primary down: ünïcode ✓",
            duration_s=1.25,
            details={"action_id": "a1", "extra_vars": {"z": "1", "a": "{{ not templated }}"}},
        ),
        Event(kind="refused", action="rollback", dependency="cache", outcome="refused", time=when),
    ]
    printed = []
    env = {k: v for k, v in os.environ.items() if k != "DEPMIRROR_STORE"}
    for url in (f"sqlite:///{tmp_path / 'h.db'}", postgres_database):
        with open_store(url) as store:
            for event in events:
                store.append_event(event)
        done = subprocess.run(
            [str(DEPMIRROR), "history", "--store", url, "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=True,
        )
        printed.append(done.stdout)
    assert printed[0] == printed[1]
    assert '"reason": "primary down: \\u00fcn\\u00efcode \\u2713"' in printed[0]


# --- schema and migrations ----------------------------------------------------------------------------
def test_schema_head_matches_the_shipped_migrations() -> None:
    assert postgres_migrate.head() == SCHEMA_HEAD
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["depmirror"]
    package = ROOT / "src" / "depmirror"
    shipped = {path for pattern in data for path in package.glob(pattern)}
    wanted = {p for p in (package / "store" / "migrations").rglob("*") if p.suffix in (".py", ".mako")}
    assert wanted and wanted <= shipped


def test_concurrent_openers_of_a_new_database_migrate_once(postgres_database: str) -> None:
    stores: list[Store] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(4)

    def opener() -> None:
        barrier.wait()
        try:
            stores.append(open_store(postgres_database))
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert failures == [] and len(stores) == 4
        with psycopg.connect(postgres_database) as connection:
            assert connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [(SCHEMA_HEAD,)]
    finally:
        for store in stores:
            store.close()


def test_a_schema_newer_than_this_depmirror_is_refused(postgres_database: str) -> None:
    open_store(postgres_database).close()
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        connection.execute(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    with pytest.raises(StoreError, match=r"revision 9999, newer than this depmirror knows .*upgrade depmirror"):
        open_store(postgres_database)


def test_history_is_append_only_even_through_sql(store: Store, postgres_database: str) -> None:
    store.append_event(Event(kind="rollback", dependency="a", outcome="succeeded"))
    with psycopg.connect(postgres_database, autocommit=True) as raw:
        for statement in ("UPDATE events SET outcome = 'failed'", "DELETE FROM events", "TRUNCATE events"):
            with pytest.raises(psycopg.IntegrityError, match="append-only"):
                raw.execute(statement)
    assert [e.outcome for e in store.events()] == ["succeeded"]


# --- several stores (runners) on one database ---------------------------------------------------------
def test_two_runners_enqueueing_the_same_alerts_at_once_store_each_once(postgres_database: str) -> None:
    alerts = [_alert(f"f{i:03d}", dependency=f"dep{i % 7}") for i in range(200)]
    results: dict[str, list[int]] = {"a": [], "b": []}
    failures: list[BaseException] = []
    with open_store(postgres_database) as first, open_store(postgres_database) as second:
        barrier = threading.Barrier(2)

        def runner(name: str, store: Store, batch: list[QueuedAlert]) -> None:
            barrier.wait()
            try:
                # Alertmanager's groups: batches of 10, the second runner in the reverse order (deadlock bait).
                for start in range(0, len(batch), 10):
                    results[name].append(store.enqueue(batch[start : start + 10]).queued)
            except BaseException as error:  # reported below
                failures.append(error)

        threads = [
            threading.Thread(target=runner, args=("a", first, alerts)),
            threading.Thread(target=runner, args=("b", second, alerts[::-1])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert failures == []
        assert sum(results["a"]) + sum(results["b"]) == len(alerts)
        assert first.queue_depth() == len(alerts)
        due = second.pending(datetime.now(UTC) + timedelta(seconds=1), per_dependency=1000)
        assert sorted(a.fingerprint for a in due) == sorted(a.fingerprint for a in alerts)


def test_an_enqueue_that_loses_a_deadlock_runs_again(postgres_database: str) -> None:
    """Another runner holds alert y and then wants x, while this one holds x and waits for y: PostgreSQL
    aborts this one (it waited first); the store runs the transaction again and finds both stored."""
    insert = (
        "INSERT INTO alert_queue (fingerprint, starts_at, status, dependency, instance, labels, annotations,"
        " group_key, received_ts, not_before_ts) VALUES (%s, '2026-01-01T00:00:00Z', 'firing', 'payments',"
        " 'payments-a', '{}', '{}', '', now(), now())"
    )
    results: list[EnqueueResult] = []
    # PostgreSQL aborts the waiter whose deadlock_timeout runs out first, once it sees the cycle: the store's
    # sessions look after 2 s (time for the other runner to start waiting), the other runner only after 60 s.
    database = postgres_database.rsplit("/", 1)[1]
    with psycopg.connect(postgres_database, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {database} SET deadlock_timeout = '2s'")
    with open_store(postgres_database) as store, psycopg.connect(postgres_database) as other:
        other.execute("SET deadlock_timeout = '60s'")
        other.execute(insert, ("y",))
        worker = threading.Thread(target=lambda: results.append(store.enqueue([_alert("x"), _alert("y")])))
        worker.start()
        with psycopg.connect(postgres_database, autocommit=True) as watcher:
            deadline = time.monotonic() + 10
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            while watcher.execute(waiting).fetchone() != (1,):
                assert time.monotonic() < deadline, "the store never waited for the other runner's alert"
                time.sleep(0.02)
        other.execute(insert, ("x",))  # waits for the store's x: a deadlock, which the store loses
        other.commit()
        worker.join(timeout=30)
        assert [(r.queued, r.duplicates) for r in results] == [(0, 2)]
        assert store.queue_depth() == 2


def test_event_ids_follow_commit_order_under_concurrent_appends(postgres_database: str) -> None:
    """A reader following after_id never skips an event: ids are handed out in commit order."""
    seen: list[int] = []
    stop = threading.Event()
    with open_store(postgres_database) as writer_a, open_store(postgres_database) as writer_b:
        reader = open_store(postgres_database)

        def follow() -> None:
            last = 0
            while True:
                writers_done = stop.is_set()  # before the read: then an empty read means nothing is left
                fresh = sorted(e.id or 0 for e in reader.events(EventFilter(after_id=last, limit=None)))
                seen.extend(fresh)
                last = fresh[-1] if fresh else last
                if writers_done and not fresh:
                    break

        def append(store: Store, name: str) -> None:
            for seq in range(100):
                store.append_event(Event(kind="rollback", dependency=name, outcome="succeeded", details={"s": seq}))

        follower = threading.Thread(target=follow)
        follower.start()
        writers = [threading.Thread(target=append, args=(s, n)) for s, n in ((writer_a, "a"), (writer_b, "b"))]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join(timeout=120)
        stop.set()
        follower.join(timeout=60)
        reader.close()
    assert sorted(seen) == seen and len(seen) == 200 and len(set(seen)) == 200


# --- readiness and reconnection -----------------------------------------------------------------------
def test_check_writable_names_a_lock_holder_within_a_second(store: Store, postgres_database: str) -> None:
    with psycopg.connect(postgres_database) as holder:
        holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        began = time.monotonic()
        with pytest.raises(StoreError, match=r"another session has held a lock .* more than 0\.5 s") as failed:
            store.check_writable()
        assert time.monotonic() - began < 1.5
        assert failed.value.file == store.url
        holder.rollback()
    store.check_writable()


def test_a_write_waits_for_a_lock_as_long_as_the_busy_timeout_then_says_so(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPMIRROR_STORE_BUSY_TIMEOUT", "0.3")
    with open_store(postgres_database) as store, psycopg.connect(postgres_database) as holder:
        holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        began = time.monotonic()
        with pytest.raises(StoreError, match=r"held a lock on the store's tables for more than 0\.3 s"):
            store.append_event(Event(kind="rollback", dependency="a", outcome="succeeded"))
        assert 0.25 < time.monotonic() - began < 2
        holder.rollback()
        assert store.append_event(Event(kind="rollback", dependency="a", outcome="succeeded")).id is not None


def test_check_writable_says_when_the_server_is_read_only(
    postgres_server: PostgresServer, postgres_database: str
) -> None:
    open_store(postgres_database).close()
    name = postgres_database.rsplit("/", 1)[1]
    with postgres_server.admin() as admin:
        admin.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    with open_store(postgres_database) as store:
        store.check()
        with pytest.raises(StoreError, match=r"read-only .*target_session_attrs=read-write"):
            store.check_writable()
        with pytest.raises(StoreError, match="read-only"):
            store.append_event(Event(kind="rollback", dependency="a", outcome="succeeded"))


def test_the_store_says_the_server_is_down_then_reconnects_when_it_is_back(
    postgres_server: PostgresServer, store: Store
) -> None:
    store.append_event(Event(kind="rollback", dependency="a", outcome="succeeded"))
    postgres_server.halt()
    try:
        began = time.monotonic()
        with pytest.raises(StoreError, match="cannot reach the server") as failed:
            store.append_event(Event(kind="rollback", dependency="lost", outcome="succeeded"))
        assert time.monotonic() - began < 8  # the pool's wait (5 s), then one direct attempt
        assert failed.value.file == store.url
        with pytest.raises(StoreError, match="cannot reach the server"):
            store.check_writable()
    finally:
        postgres_server.resume()
    # The pool replaces the connections the restart cut, before handing one out: no error after it.
    store.append_event(Event(kind="rollback", dependency="b", outcome="succeeded"))
    assert [e.dependency for e in store.events()] == ["b", "a"]
    store.check_writable()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
