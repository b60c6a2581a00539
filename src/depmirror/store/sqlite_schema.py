"""The SQLite schema. Times are REAL seconds since the epoch (UTC); JSON columns hold objects as text."""

from __future__ import annotations

# 2: the leases table (several runners on one store). 3: zonal shifts and overrides. Every statement is
# IF NOT EXISTS, so opening an older file brings it up to date.
SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    dependency TEXT NOT NULL,
    instance TEXT,
    target TEXT,
    action TEXT,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    outcome TEXT NOT NULL,
    duration_s REAL,
    trigger TEXT NOT NULL,
    inputs TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_dependency ON events (dependency, id);
CREATE INDEX IF NOT EXISTS events_by_ts ON events (ts);
-- The history is an audit trail: the database itself refuses to rewrite it.
CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the rollback history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the rollback history is append-only'); END;

CREATE TABLE IF NOT EXISTS primaries (
    dependency TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS applied_plan (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    plan TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rf_decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dependency TEXT NOT NULL,
    rf INTEGER NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rf_decisions_by_dependency ON rf_decisions (dependency, ts);

CREATE TABLE IF NOT EXISTS alert_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    dependency TEXT NOT NULL,
    instance TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    group_key TEXT NOT NULL,
    received_ts REAL NOT NULL,
    not_before_ts REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    action_id TEXT,
    retry_of TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    UNIQUE (fingerprint, starts_at, status)
);
CREATE INDEX IF NOT EXISTS alert_queue_pending ON alert_queue (state, not_before_ts);
CREATE INDEX IF NOT EXISTS alert_queue_by_instance ON alert_queue (dependency, instance, id);

CREATE TABLE IF NOT EXISTS actions (
    action_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    dependency TEXT NOT NULL,
    instance TEXT NOT NULL,
    runner_id TEXT NOT NULL,
    started_ts REAL NOT NULL,
    finished_ts REAL,
    queue_ids TEXT NOT NULL,
    external_id TEXT,
    trigger TEXT NOT NULL,
    inputs TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_open ON actions (runner_id, finished_ts);

-- One runner acts on a dependency at a time; the token fences a runner that lost its lease.
CREATE TABLE IF NOT EXISTS leases (
    dependency TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires_ts REAL NOT NULL
);

-- Zonal shifts and run-time overrides: rows are ended, never deleted (they are part of the audit trail).
-- At most one open row per zone / dependency: the unique index backs the check the store makes.
CREATE TABLE IF NOT EXISTS zonal_shifts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    zone TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    started_ts REAL NOT NULL,
    expires_ts REAL NOT NULL,
    ended_ts REAL,
    end_reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS zonal_shifts_open ON zonal_shifts (zone) WHERE ended_ts IS NULL;
CREATE TABLE IF NOT EXISTS overrides (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dependency TEXT NOT NULL,
    rf_min INTEGER,
    rf_max INTEGER,
    unhealthy REAL,
    rollback TEXT,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ts REAL NOT NULL,
    expires_ts REAL NOT NULL,
    ended_ts REAL,
    end_reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS overrides_open ON overrides (dependency) WHERE ended_ts IS NULL;
"""
