"""The store's tests run on every backend: `store_url` is a new SQLite file, then a new PostgreSQL database
(tests/postgres_server.py); `open_test_store()` opens it and closes it after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from depmirror.store import Store, open_store

BACKENDS = ("sqlite", "postgresql")

OpenStore = Callable[..., Store]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'h.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
def open_test_store(store_url: str) -> Iterator[OpenStore]:
    opened: list[Store] = []

    def _open(*, create: bool = True) -> Store:
        store = open_store(store_url, create=create)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()
