"""Zonal shifts and run-time overrides (as SQLite's version 3).

Revision ID: 0003
Revises: 0002

Rows are ended, never deleted; at most one open row per zone / dependency (a partial unique index backs
the check the store makes under its advisory lock).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE zonal_shifts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    zone TEXT COLLATE "C" NOT NULL,
    reason TEXT COLLATE "C" NOT NULL,
    created_by TEXT COLLATE "C" NOT NULL,
    started_ts TIMESTAMPTZ NOT NULL,
    expires_ts TIMESTAMPTZ NOT NULL,
    ended_ts TIMESTAMPTZ,
    end_reason TEXT COLLATE "C"
);
CREATE UNIQUE INDEX zonal_shifts_open ON zonal_shifts (zone) WHERE ended_ts IS NULL;
CREATE TABLE overrides (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dependency TEXT COLLATE "C" NOT NULL,
    rf_min INTEGER,
    rf_max INTEGER,
    unhealthy DOUBLE PRECISION,
    rollback TEXT COLLATE "C",
    reason TEXT COLLATE "C" NOT NULL,
    created_by TEXT COLLATE "C" NOT NULL,
    created_ts TIMESTAMPTZ NOT NULL,
    expires_ts TIMESTAMPTZ NOT NULL,
    ended_ts TIMESTAMPTZ,
    end_reason TEXT COLLATE "C"
);
CREATE UNIQUE INDEX overrides_open ON overrides (dependency) WHERE ended_ts IS NULL;
"""


def upgrade() -> None:
    op.get_bind().exec_driver_sql(SCHEMA)


def downgrade() -> None:
    raise NotImplementedError("the store's schema only moves forward: the history is append-only")
