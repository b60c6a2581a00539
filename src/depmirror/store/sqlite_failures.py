"""Why a SQLite store file cannot be opened or written, as a StoreError that names the file and the fix.

Everything here looks at the file through stat(), access() and /proc/locks only, never through a second
descriptor: closing any descriptor of a file drops every POSIX lock this process holds on it, including
the locks of SQLite connections that another store object of this process has open.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

from depmirror.store.base import StoreError

# A store being created by another process is 0 bytes until its first write, a few ms later.
_EMPTY_GRACE_S = 1.0
# SQLite's WAL write lock: byte 120 of the -shm file (WALINDEX_LOCK_OFFSET + WAL_WRITE_LOCK).
_WAL_WRITE_LOCK_BYTE = 120
# SQLite's rollback-journal locks: the pending, reserved and shared bytes of the database file.
_PENDING_BYTE = 0x40000000
_SHARED_END = _PENDING_BYTE + 2 + 510

_DAMAGED_FIX = "restore it from a backup, or move it aside to start a new one"
_WRITABLE_FIX = "make the file and its directory readable and writable by this user, or run as the store's owner"


def refuse_unopenable(path: Path, *, create: bool) -> None:
    """Raise StoreError for what SQLite would open and then change or fail on: a missing file (unless
    creating), a file that is not a regular file, an empty file, a file or directory this user cannot
    write. Creates the missing parent directories when `create`."""
    name = str(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        if not create:
            raise StoreError(
                name,
                "no store here",
                "check --store, $DEPMIRROR_STORE or the runner's store setting; the first write creates a store",
            ) from None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(name, f"cannot create the store's directory: {error.strerror}", _WRITABLE_FIX) from error
        refuse_unwritable(path)
        return
    except OSError as error:
        raise StoreError(name, f"cannot read the store file: {error.strerror}", _WRITABLE_FIX) from error
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(name, "is not a regular file", "point the store at a file")
    if info.st_size == 0 and _stays_empty(path):
        raise StoreError(
            name,
            "the store file is empty (0 bytes): it is not a store",
            "remove it to start a new one, or restore it from a backup",
        )
    refuse_unwritable(path)


def refuse_unwritable(path: Path) -> None:
    """Raise StoreError when this user cannot write the store: SQLite needs the file and, for its -wal and
    -shm files, the directory. (root passes permission bits, not a read-only mount or `chattr +i`.)"""
    name = str(path)
    directory = path.absolute().parent
    try:
        read_only_mount = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError as error:
        raise StoreError(name, f"cannot read the store's directory: {error.strerror}", _WRITABLE_FIX) from error
    if read_only_mount:
        raise StoreError(
            name,
            "the store is on a read-only file system",
            "remount it read-write, or move the store to a writable file system",
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(
            name,
            f"the store file is read-only for this user ({_owner_and_mode(path)}, running as uid {os.getuid()})",
            "make it writable by this user (chown or chmod), or run as its owner",
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StoreError(
            name,
            f"the store's directory {directory} is not writable for this user ({_owner_and_mode(directory)},"
            f" running as uid {os.getuid()}); SQLite creates {path.name}-wal and {path.name}-shm there",
            "make the directory writable by this user, or move the store to one that is",
        )


def explain(path: Path, error: sqlite3.Error, *, busy_timeout_s: float) -> StoreError:
    """SQLite's error in words: what is wrong with the store file and what to do."""
    name = str(path)
    code = getattr(error, "sqlite_errorname", "")
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        holder = _write_lock_holder(path)
        who = "another process" if holder is None else f"another process (pid {holder})"
        if holder == os.getpid():
            who = f"another connection of this process (pid {holder})"
        return StoreError(
            name,
            f"the store is locked by {who}, which has held its write lock for more than {busy_timeout_s:g} s",
            "wait for it to finish or stop it, then retry; DEPMIRROR_STORE_BUSY_TIMEOUT sets how long to wait",
        )
    if code == "SQLITE_NOTADB":
        return StoreError(name, f"the store is corrupt: {error}", _DAMAGED_FIX)
    if code.startswith("SQLITE_CORRUPT"):
        return StoreError(name, f"the store is damaged or truncated: {error}", _DAMAGED_FIX)
    if code.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_CANTOPEN")):
        return StoreError(name, f"SQLite cannot write the store: {error}", _WRITABLE_FIX)
    if code == "SQLITE_FULL":
        return StoreError(name, f"the disk is full: {error}", "free space on the store's file system")
    if code.startswith("SQLITE_IOERR"):
        return StoreError(name, f"I/O error on the store: {error}", "check the disk and the kernel log")
    return StoreError(name, f"SQLite: {error} ({code or type(error).__name__})")


def _stays_empty(path: Path) -> bool:
    deadline = time.monotonic() + _EMPTY_GRACE_S
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            if path.stat().st_size > 0:
                return False
        except OSError:
            return True
    return True


def _owner_and_mode(path: Path) -> str:
    info = path.stat()
    return f"owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}"


def _write_lock_holder(path: Path) -> int | None:
    """The pid holding the store's write lock, from /proc/locks (Linux); None when it cannot be told."""
    wanted: list[tuple[str, int, int]] = []  # (device:inode as /proc/locks spells it, first, last byte)
    for file, first, last in (
        (Path(f"{path}-shm"), _WAL_WRITE_LOCK_BYTE, _WAL_WRITE_LOCK_BYTE),
        (path, _PENDING_BYTE, _SHARED_END - 1),
    ):
        try:
            info = file.stat()
        except OSError:
            continue
        device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
        wanted.append((device, first, last))
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        # "1: POSIX  ADVISORY  WRITE 5575 fe:00:2146762 120 120"; blocked waiters are marked "->".
        fields = line.split()
        if len(fields) < 8 or fields[1] == "->" or fields[3] != "WRITE":
            continue
        pid, device, start, end = fields[4], fields[5], fields[6], fields[7]
        for want_device, first, last in wanted:
            if device == want_device and int(start) <= last and (end == "EOF" or int(end) >= first):
                return int(pid)
    return None
