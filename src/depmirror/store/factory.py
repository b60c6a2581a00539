"""`open_store(url_or_path)`: the one way code opens the store, whatever backs it."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from depmirror.store.base import Store, StoreError
from depmirror.store.sqlite import SQLiteStore

STORE_ENV = "DEPMIRROR_STORE"
DEFAULT_STORE_PATH = "depmirror.db"


def default_store_url() -> str:
    """$DEPMIRROR_STORE if set, else ./depmirror.db (relative to the working directory)."""
    return os.environ.get(STORE_ENV) or DEFAULT_STORE_PATH


def open_store(url_or_path: str | Path | None = None, *, create: bool = True) -> Store:
    """Open `sqlite:////abs/path`, `sqlite:///rel/path`, `sqlite:rel/path` or a plain path.

    None means default_store_url().

    `postgresql://...` is reserved for the shared backend (several runners or AWX nodes) and is
    rejected with a StoreError until that backend exists.
    """
    target = str(url_or_path) if url_or_path is not None else default_store_url()
    if "://" not in target and not target.startswith("sqlite:"):
        return SQLiteStore(target, create=create)
    parsed = urlparse(target)
    if parsed.scheme == "sqlite":
        # SQLAlchemy's spelling: sqlite:///rel/path, sqlite:////abs/path; also sqlite:rel/path.
        path = target.removeprefix("sqlite:///") if target.startswith("sqlite:///") else parsed.path
        if target.startswith("sqlite://") and not target.startswith("sqlite:///"):
            raise StoreError(f"{target}: a host is not allowed in a sqlite URL (write sqlite:////abs/path)")
        if not path:
            raise StoreError(f"{target}: no path in the sqlite URL (write sqlite:////abs/path/depmirror.db)")
        return SQLiteStore(path, create=create)
    if parsed.scheme in ("postgres", "postgresql"):
        raise StoreError(f"{parsed.scheme}:// stores are not implemented yet; use sqlite:///PATH")
    raise StoreError(f"{target}: unknown store scheme {parsed.scheme!r} (use sqlite:///PATH or a path)")
