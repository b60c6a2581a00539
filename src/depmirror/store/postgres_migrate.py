"""The PostgreSQL store's schema, versioned with Alembic and brought up to date when a store opens.

The revisions live in `migrations/versions/` (plain SQL, shipped in the package); there is no alembic.ini:
the Config is built here and Alembic runs on a SQLAlchemy connection made by the store's own psycopg
connect function (the `postgresql+psycopg` dialect, used for migrations only).

Several runners may start at once on a new database: the upgrade runs in one transaction that first takes
a transaction-level advisory lock, so one of them migrates and the others, once it commits, find the
schema current and do nothing. The store imports this module only when an upgrade is due (it reads the
version with psycopg first): Alembic and SQLAlchemy cost ~0.3 s to import, on every command otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from depmirror.store.postgres_schema import MIGRATION_LOCK_KEY

MIGRATIONS = Path(__file__).with_name("migrations")


def config() -> Config:
    settings = Config()
    settings.set_main_option("script_location", str(MIGRATIONS))
    return settings


def head() -> str | None:
    """The newest revision this depmirror knows."""
    return ScriptDirectory.from_config(config()).get_current_head()


def is_known(revision: str) -> bool:
    """False for a revision written by a newer depmirror."""
    try:
        return ScriptDirectory.from_config(config()).get_revision(revision) is not None
    except CommandError:
        return False


def upgrade(connect: Callable[[], Any]) -> None:
    """Bring the schema to head under the migration lock; `connect()` returns a new psycopg connection."""
    engine = create_engine("postgresql+psycopg://", creator=connect, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            # Held until this transaction commits: concurrent openers queue here, then see the new version.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            settings = config()
            settings.attributes["connection"] = connection
            command.upgrade(settings, "head")
    finally:
        engine.dispose()
