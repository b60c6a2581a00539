"""What the PostgreSQL store's code expects of its schema; the revisions are in migrations/versions/.

Kept apart from postgres_migrate so that opening a current store never imports Alembic.
"""

from __future__ import annotations

# The newest Alembic revision; tests/unit/store/test_store_postgres.py checks it against migrations/.
SCHEMA_HEAD = "0003"
# Alembic's version table, named for depmirror so that it cannot meet another tool's in a shared database.
VERSION_TABLE = "depmirror_schema_version"
# pg_advisory_xact_lock keys ('dmschema', 'dmevents' as signed 64-bit integers): schema upgrades, and
# appends to the history (so that event ids are handed out in commit order: a reader that follows
# `after_id` never skips an event committed late).
MIGRATION_LOCK_KEY = int.from_bytes(b"dmschema", "big", signed=True)
EVENTS_LOCK_KEY = int.from_bytes(b"dmevents", "big", signed=True)
# Starting a zonal shift and setting an override read the open rows, then write: these keys make the
# read-then-write of racing runners take turns ('dmshifts', 'dmoverrd').
SHIFTS_LOCK_KEY = int.from_bytes(b"dmshifts", "big", signed=True)
OVERRIDES_LOCK_KEY = int.from_bytes(b"dmoverrd", "big", signed=True)
