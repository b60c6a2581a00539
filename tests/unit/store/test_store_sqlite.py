"""What only the SQLite store has: its file, its URLs, its triggers seen through sqlite3. The Store contract
runs on every backend in test_store_contract.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from depmirror.store import Event, StoreError, open_store
from depmirror.store.sqlite import SQLiteStore


def test_history_is_append_only_even_through_sql(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with open_store(path) as store:
        store.append_event(Event(kind="rollback", dependency="a", outcome="succeeded"))
    raw = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("UPDATE events SET outcome = 'failed'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM events")
    raw.close()


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_store(f"sqlite:///{tmp_path}/a.db")
    assert isinstance(absolute, SQLiteStore) and absolute.path == tmp_path / "a.db"
    absolute.close()
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:rel.db")
    assert (tmp_path / "rel.db").exists()
    relative.close()
    monkeypatch.setenv("DEPMIRROR_STORE", str(tmp_path / "env.db"))
    open_store().close()
    assert (tmp_path / "env.db").exists()
    with pytest.raises(StoreError, match="no store here"):
        open_store(tmp_path / "missing.db", create=False)
