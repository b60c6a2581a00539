"""Alembic's environment for the PostgreSQL store: runs on the connection depmirror hands it.

depmirror runs this from `depmirror.store.postgres_migrate`, which opens the connection, takes the
migration lock and commits; there is no alembic.ini and no URL here. Each revision is plain SQL.
"""

from __future__ import annotations

from alembic import context

from depmirror.store.postgres_schema import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through depmirror.store.postgres_migrate.upgrade(), not the alembic CLI")
context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
