"""`open_store(url_or_path)`: the one way code opens the store, whatever backs it."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from depmirror.errors import ConfigError
from depmirror.store.base import Store, StoreError
from depmirror.store.sqlite import DEFAULT_BUSY_TIMEOUT_S, SQLiteStore

STORE_ENV = "DEPMIRROR_STORE"
DEFAULT_STORE_PATH = "depmirror.db"
# How long a command waits for another process's write lock before it says who holds it.
BUSY_TIMEOUT_ENV = "DEPMIRROR_STORE_BUSY_TIMEOUT"


def default_store_url() -> str:
    """$DEPMIRROR_STORE if set, else ./depmirror.db (relative to the working directory)."""
    return os.environ.get(STORE_ENV) or DEFAULT_STORE_PATH


def busy_timeout_s() -> float:
    """$DEPMIRROR_STORE_BUSY_TIMEOUT (seconds) if set, else 30."""
    value = os.environ.get(BUSY_TIMEOUT_ENV, "")
    if not value:
        return DEFAULT_BUSY_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 86400:
        raise ConfigError("environment", BUSY_TIMEOUT_ENV, f"must be seconds in 0..86400, got {value!r}", "unset it")
    return seconds


def open_store(url_or_path: str | Path | None = None, *, create: bool = True) -> Store:
    """Open `sqlite:////abs/path`, `sqlite:///rel/path`, `sqlite:rel/path`, a plain path, or
    `postgresql://USER@HOST:PORT/DATABASE` (also `postgres://`; any libpq URL) for the shared backend.

    None means default_store_url(). A store that is missing (unless `create`), empty, corrupt, truncated,
    read-only or locked longer than busy_timeout_s() raises StoreError naming the file and the fix; for
    PostgreSQL also a server that is down, refused authentication or a missing database, naming the URL
    without its password.
    """
    target = str(url_or_path) if url_or_path is not None else default_store_url()
    if "://" not in target and not target.startswith("sqlite:"):
        return SQLiteStore(target, create=create, busy_timeout_s=busy_timeout_s())
    parsed = urlparse(target)
    if parsed.scheme == "sqlite":
        # SQLAlchemy's spelling: sqlite:///rel/path, sqlite:////abs/path; also sqlite:rel/path.
        path = target.removeprefix("sqlite:///") if target.startswith("sqlite:///") else parsed.path
        if target.startswith("sqlite://") and not target.startswith("sqlite:///"):
            raise StoreError(target, "a host is not allowed in a sqlite URL", "write sqlite:////abs/path")
        if not path:
            raise StoreError(target, "no path in the sqlite URL", "write sqlite:////abs/path/depmirror.db")
        return SQLiteStore(path, create=create, busy_timeout_s=busy_timeout_s())
    if parsed.scheme in ("postgres", "postgresql"):
        # Imported only here: psycopg takes ~0.3 s to import, which every SQLite command would pay.
        from depmirror.store.postgres import PostgresStore

        return PostgresStore(target, create=create, busy_timeout_s=busy_timeout_s())
    # The URL is not echoed: a mistyped scheme must not print the password in it.
    shown = f"{parsed.scheme}://{parsed.hostname or ''}{parsed.path}"
    raise StoreError(
        shown, f"unknown store scheme {parsed.scheme!r}", "use sqlite:///PATH, a path, or postgresql://..."
    )
