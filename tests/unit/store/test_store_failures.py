"""A broken store file, made for real, through the real CLI (history, serve, plan): one line naming the
file and the fix, exit 2, no traceback, and the file exactly as it was.

Tests run as root, which writes through permission bits: the read-only cases run the CLI as `nobody`
(a 0444 file, a 0555 directory) and as root on a read-only bind mount in a private mount namespace.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from tests.fakes.webhook import free_port

from depmirror.store import Event, StoreError, open_store

DEPMIRROR = Path(sys.executable).with_name("depmirror")
NOBODY = 65534
# Root writes through permission bits, so the permission cases run as nobody, keeping only the right to
# read and search any directory: the venv's interpreter lives under /root (0700). Writes are checked as usual.
_AS_NOBODY = (
    "setpriv",
    f"--reuid={NOBODY}",
    f"--regid={NOBODY}",
    "--clear-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
)
TOKEN = "a-token-for-the-store-failure-tests"
# How long a command waits for a locked store here (30 s in production).
BUSY_TIMEOUT_S = "0.5"
COMMANDS = ("history", "serve", "plan")
GRAPH = Path(__file__).parents[3] / "inventories" / "example" / "graph.yml"

Breaker = Callable[[Path], None]


def _write_store(path: Path) -> None:
    with open_store(path) as store:
        store.append_event(Event(kind="rollback", dependency="payments", instance="payments-a", outcome="succeeded"))


def _corrupt(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 400)


def _truncated(path: Path) -> None:
    _write_store(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


# Another process takes the write lock and keeps it until its stdin closes. (Not this process: reading
# the store's bytes here would close a descriptor of the file and so drop this process's SQLite locks.)
HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def _write_lock_held(store: Path) -> Iterator[int]:
    """The pid of a process holding the store's write lock until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline() == "held\n"
        yield holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory `nobody` can reach (pytest's tmp_path sits under a 0700 directory of root's)."""
    made = Path(tempfile.mkdtemp(prefix="depmirror-store-failures-"))
    made.chmod(0o755)
    yield made
    for path in (made, *made.rglob("*")):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(made)


def _snapshot(store: Path) -> tuple[str, list[str]]:
    """The store's bytes and the names beside it (a -wal or -shm left behind would show)."""
    return hashlib.sha256(store.read_bytes()).hexdigest(), sorted(p.name for p in store.parent.iterdir())


def _command(command: str, store: Path, work: Path) -> list[str]:
    if command == "history":
        return [str(DEPMIRROR), "history", "--store", str(store)]
    if command == "plan":
        return [str(DEPMIRROR), "plan", "--graph", str(GRAPH), "--store", str(store)]
    config = {
        "listen": {"host": "127.0.0.1", "port": free_port()},
        "auth": {"type": "bearer", "token_env": "DEPMIRROR_TEST_TOKEN"},
        "store": str(store),
        "dependencies": ["payments"],
        "mode": "shadow",
    }
    path = work / "runner.yml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    return [str(DEPMIRROR), "serve", "--config", str(path)]


def _run(argv: list[str], cwd: Path, *, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "DEPMIRROR_STORE_BUSY_TIMEOUT": BUSY_TIMEOUT_S,
        "DEPMIRROR_TEST_TOKEN": TOKEN,
    }
    if as_nobody and os.geteuid() == 0:
        argv = [*_AS_NOBODY, *argv]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def _assert_refused(result: subprocess.CompletedProcess[str], store: Path, *phrases: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == 2, result.stderr
    line = lines[0]
    assert str(store) in line and "fix:" in line, line
    for phrase in phrases:
        assert phrase in line, line
    return line


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("breaker", "phrase"),
    [
        (_corrupt, "the store is corrupt: file is not a database"),
        (_truncated, "the store is damaged or truncated: database disk image is malformed"),
        (_empty, "the store file is empty (0 bytes)"),
    ],
    ids=["corrupt", "truncated", "empty"],
)
def test_a_damaged_store_is_refused_in_one_line_and_left_as_it_was(
    tmp_path: Path, command: str, breaker: Breaker, phrase: str
) -> None:
    store = tmp_path / "state.db"
    breaker(store)
    argv = _command(command, store, tmp_path)
    before = _snapshot(store)
    result = _run(argv, tmp_path)
    _assert_refused(result, store, phrase)
    assert _snapshot(store) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_locked_store_names_the_process_holding_it(tmp_path: Path, command: str) -> None:
    store = tmp_path / "state.db"
    _write_store(store)
    argv = _command(command, store, tmp_path)
    with _write_lock_held(store) as holder:
        before = _snapshot(store)
        started = time.monotonic()
        result = _run(argv, tmp_path)
        waited = time.monotonic() - started
        line = _assert_refused(result, store, f"locked by another process (pid {holder})")
        assert f"more than {BUSY_TIMEOUT_S} s" in line
        assert waited < 20, "DEPMIRROR_STORE_BUSY_TIMEOUT bounds the wait"
        assert _snapshot(store) == before


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_read_only_store_file_is_refused(shared_dir: Path, command: str) -> None:
    work = shared_dir / "work"
    work.mkdir(mode=0o755)
    _own(work)
    store = work / "state.db"
    _write_store(store)
    _own(store)
    store.chmod(0o444)
    argv = _command(command, store, work)
    before = _snapshot(store)
    result = _run(argv, work, as_nobody=True)
    _assert_refused(result, store, "the store file is read-only for this user", "mode 0444")
    assert _snapshot(store) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_store_in_a_read_only_directory_is_refused(shared_dir: Path, command: str) -> None:
    work = shared_dir / "work"
    work.mkdir(mode=0o755)
    store = work / "state.db"
    _write_store(store)
    for path in (work, store):
        _own(path)
    argv = _command(command, store, work)
    work.chmod(0o555)
    before = _snapshot(store)
    result = _run(argv, work, as_nobody=True)
    _assert_refused(result, store, f"the store's directory {work} is not writable for this user", "-wal")
    assert _snapshot(store) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_store_on_a_read_only_mount_is_refused_even_for_root(tmp_path: Path, command: str) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    store = mount / "state.db"
    _write_store(store)
    argv = _command(command, store, tmp_path)
    # A private mount namespace: the read-only bind mount exists only for this one command.
    remount = f"mount --bind {mount} {mount} && mount -o remount,ro,bind {mount}"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", remount], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here (needs CAP_SYS_ADMIN): {probe.stderr.strip()}")
    before = _snapshot(store)
    result = _run(["unshare", "-m", "sh", "-c", f'{remount} && exec "$@"', "sh", *argv], tmp_path)
    _assert_refused(result, store, "the store is on a read-only file system")
    assert _snapshot(store) == before


def test_a_missing_store_is_refused_and_not_created(tmp_path: Path) -> None:
    store = tmp_path / "state.db"
    result = _run(_command("history", store, tmp_path), tmp_path)
    _assert_refused(result, store, "no store here")
    assert not store.exists()


def test_a_new_store_is_still_created_where_none_exists(tmp_path: Path) -> None:
    store = tmp_path / "new" / "state.db"
    with open_store(store, create=True) as opened:
        assert opened.events() == []
    assert store.stat().st_size > 0


def test_check_writable_answers_fast_and_names_the_lock_holder(tmp_path: Path) -> None:
    store_path = tmp_path / "state.db"
    with open_store(store_path) as store:
        store.check_writable()
        with _write_lock_held(store_path) as holder:
            started = time.monotonic()
            with pytest.raises(StoreError, match=rf"locked by another process \(pid {holder}\)"):
                store.check_writable()
            assert time.monotonic() - started < 1.0
        store.check_writable()
        # The probe's own connection came and went; the store's connection still writes.
        assert store.append_event(Event(kind="rollback", dependency="cache", outcome="succeeded")).id is not None


CHECK_AFTER_CHMOD = """
import sys
from pathlib import Path
from depmirror.store import StoreError, open_store
path = Path(sys.argv[1])
store = open_store(path)
path.chmod(0o444)
try:
    store.check_writable()
except StoreError as error:
    print(error)
"""


def test_check_writable_sees_a_store_made_read_only_after_it_opened(shared_dir: Path) -> None:
    work = shared_dir / "work"
    work.mkdir(mode=0o755)
    store = work / "state.db"
    _write_store(store)
    for path in (work, store):
        _own(path)
    result = _run([sys.executable, "-c", CHECK_AFTER_CHMOD, str(store)], work, as_nobody=True)
    assert result.returncode == 0, result.stderr
    assert f"{store}: the store file is read-only for this user" in result.stdout


def test_an_unknown_scheme_is_refused_without_echoing_a_password() -> None:
    with pytest.raises(StoreError) as raised:
        open_store("postgress://depmirror:s3cret-pass@127.0.0.1:5432/depmirror")
    assert "unknown store scheme 'postgress'" in str(raised.value)
    assert "s3cret-pass" not in str(raised.value)
