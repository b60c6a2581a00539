"""The first schema: history, state, the runner's queue and action journal (as SQLite's version 1).

Revision ID: 0001
Revises:

Times are timestamptz, JSON columns jsonb, ids identity columns. Text compares and sorts by bytes
(COLLATE "C"), as in SQLite, so that an ORDER BY or max() gives the same answer on both backends.
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts TIMESTAMPTZ NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    dependency TEXT COLLATE "C" NOT NULL,
    instance TEXT COLLATE "C",
    target TEXT COLLATE "C",
    action TEXT COLLATE "C",
    decision TEXT COLLATE "C" NOT NULL,
    reason TEXT COLLATE "C" NOT NULL,
    outcome TEXT COLLATE "C" NOT NULL,
    duration_s DOUBLE PRECISION,
    trigger JSONB NOT NULL,
    inputs JSONB NOT NULL,
    details JSONB NOT NULL
);
CREATE INDEX events_by_dependency ON events (dependency, id);
CREATE INDEX events_by_ts ON events (ts);

-- The history is an audit trail: the database itself refuses to rewrite it.
CREATE FUNCTION depmirror_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the rollback history is append-only' USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER events_append_only_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION depmirror_events_append_only();
CREATE TRIGGER events_append_only_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION depmirror_events_append_only();

CREATE TABLE primaries (
    dependency TEXT COLLATE "C" PRIMARY KEY,
    instance TEXT COLLATE "C" NOT NULL,
    ts TIMESTAMPTZ NOT NULL
);
CREATE TABLE applied_plan (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    plan JSONB NOT NULL,
    ts TIMESTAMPTZ NOT NULL
);
CREATE TABLE rf_decisions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dependency TEXT COLLATE "C" NOT NULL,
    rf INTEGER NOT NULL,
    ts TIMESTAMPTZ NOT NULL
);
CREATE INDEX rf_decisions_by_dependency ON rf_decisions (dependency, ts);

CREATE TABLE alert_queue (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint TEXT COLLATE "C" NOT NULL,
    starts_at TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    dependency TEXT COLLATE "C" NOT NULL,
    instance TEXT COLLATE "C" NOT NULL,
    labels JSONB NOT NULL,
    annotations JSONB NOT NULL,
    group_key TEXT COLLATE "C" NOT NULL,
    received_ts TIMESTAMPTZ NOT NULL,
    not_before_ts TIMESTAMPTZ NOT NULL,
    state TEXT COLLATE "C" NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'acting', 'done')),
    action_id TEXT COLLATE "C",
    retry_of TEXT COLLATE "C",
    attempts INTEGER NOT NULL DEFAULT 0,
    -- The alert identity: whichever runner receives a resend, it is stored once.
    CONSTRAINT alert_queue_identity UNIQUE (fingerprint, starts_at, status)
);
CREATE INDEX alert_queue_pending ON alert_queue (state, not_before_ts);
CREATE INDEX alert_queue_by_instance ON alert_queue (dependency, instance, id);
CREATE INDEX alert_queue_by_action ON alert_queue (action_id) WHERE action_id IS NOT NULL;

CREATE TABLE actions (
    action_id TEXT COLLATE "C" PRIMARY KEY,
    kind TEXT COLLATE "C" NOT NULL,
    dependency TEXT COLLATE "C" NOT NULL,
    instance TEXT COLLATE "C" NOT NULL,
    runner_id TEXT COLLATE "C" NOT NULL,
    started_ts TIMESTAMPTZ NOT NULL,
    finished_ts TIMESTAMPTZ,
    queue_ids BIGINT[] NOT NULL,
    external_id TEXT COLLATE "C",
    trigger JSONB NOT NULL,
    inputs JSONB NOT NULL
);
CREATE INDEX actions_open ON actions (runner_id, started_ts) WHERE finished_ts IS NULL;
"""


def upgrade() -> None:
    # The driver's own execute: plain SQL, no bind-parameter parsing of the function body.
    op.get_bind().exec_driver_sql(SCHEMA)


def downgrade() -> None:
    raise NotImplementedError("the store's schema only moves forward: the history is append-only")
