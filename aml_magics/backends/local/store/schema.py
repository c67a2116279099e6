"""The local workspace's SQLite schema: one migration per version (``PRAGMA user_version``)."""
from __future__ import annotations

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 60_000

# Each entry upgrades the schema from version i to i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS experiments(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS computes(
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        max_concurrent INTEGER NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS runs(
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        experiment_id INTEGER NOT NULL REFERENCES experiments(id),
        parent_id INTEGER REFERENCES runs(id),
        display_name TEXT,
        kind TEXT NOT NULL,
        compute TEXT,
        status TEXT NOT NULL,
        created REAL NOT NULL,
        started REAL,
        ended REAL,
        exit_code INTEGER,
        error TEXT,
        traceback TEXT,
        host_pid INTEGER,
        host_start TEXT,
        user_pid INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        spec TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs(experiment_id, parent_id, id);
    CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status, compute);
    CREATE INDEX IF NOT EXISTS runs_by_parent ON runs(parent_id);
    CREATE TABLE IF NOT EXISTS run_tags(
        run INTEGER NOT NULL, key TEXT NOT NULL, value TEXT,
        PRIMARY KEY(run, key)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS run_params(
        run INTEGER NOT NULL, key TEXT NOT NULL, value TEXT,
        PRIMARY KEY(run, key)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS status_history(
        run INTEGER NOT NULL, status TEXT NOT NULL, ts REAL NOT NULL, reason TEXT);
    CREATE INDEX IF NOT EXISTS status_history_by_run ON status_history(run);
    CREATE TABLE IF NOT EXISTS metric_keys(
        id INTEGER PRIMARY KEY,
        run INTEGER NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        UNIQUE(run, name));
    -- scalar series: the hot table. One row per series per flush, the points packed as
    -- little-endian arrays (int64 steps, float64 timestamps and values): a flush costs one
    -- row, not one per point. first_index counts the series' points before the chunk, so
    -- "points since cursor" reads touch only the chunks they need.
    CREATE TABLE IF NOT EXISTS metric_chunks(
        key_id INTEGER NOT NULL, first_index INTEGER NOT NULL, n INTEGER NOT NULL,
        steps BLOB NOT NULL, ts BLOB NOT NULL, vals BLOB NOT NULL,
        PRIMARY KEY(key_id, first_index)) WITHOUT ROWID;
    -- strings, rows, tables and images: one JSON payload each
    CREATE TABLE IF NOT EXISTS metric_records(
        id INTEGER PRIMARY KEY, key_id INTEGER NOT NULL, ts REAL NOT NULL, payload TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS metric_records_by_key ON metric_records(key_id);
    CREATE TABLE IF NOT EXISTS datastores(
        name TEXT PRIMARY KEY, kind TEXT NOT NULL, path TEXT NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
    """,
    """
    CREATE TABLE IF NOT EXISTS models(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        path TEXT NOT NULL,
        entry TEXT NOT NULL,
        framework TEXT,
        description TEXT,
        run_id TEXT,
        created REAL NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        properties TEXT NOT NULL DEFAULT '{}',
        UNIQUE(name, version));
    CREATE INDEX IF NOT EXISTS models_by_run ON models(run_id);
    """,
    """
    CREATE TABLE IF NOT EXISTS deployments(
        name TEXT PRIMARY KEY,
        models TEXT NOT NULL,
        state TEXT NOT NULL,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        scoring_uri TEXT NOT NULL,
        supervisor_pid INTEGER,
        supervisor_start TEXT,
        server_pid INTEGER,
        restarts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL);
    """,
    """
    CREATE TABLE IF NOT EXISTS environments(
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        hash TEXT NOT NULL,
        packages TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY(name, version));
    """,
    """
    ALTER TABLE runs ADD COLUMN cancel_reason TEXT;
    """,
    # the start token of every recorded pid: a recycled pid is never taken for the process we started
    """
    ALTER TABLE runs ADD COLUMN user_start TEXT;
    ALTER TABLE deployments ADD COLUMN server_start TEXT;
    """,
    # runs by tag, newest first: a tag filter walks this index backwards and stops at a page
    """
    CREATE INDEX IF NOT EXISTS run_tags_by_value ON run_tags(key, value, run);
    """,
    # a cache of scalar series for display: per block of `base` points (a power of two), its minimum and maximum
    # points, packed like metric_chunks (index, step, time and value arrays), `count` blocks to a page row. Written
    # by readers of long series (store.summaries), derived from metric_chunks, never the only copy of anything:
    # the doctor's salvage leaves it behind and it is rebuilt on the next read.
    """
    CREATE TABLE IF NOT EXISTS metric_summaries(
        key_id INTEGER NOT NULL, base INTEGER NOT NULL, page INTEGER NOT NULL, count INTEGER NOT NULL,
        lo_i BLOB NOT NULL, lo_s BLOB NOT NULL, lo_t BLOB NOT NULL, lo_v BLOB NOT NULL,
        hi_i BLOB NOT NULL, hi_s BLOB NOT NULL, hi_t BLOB NOT NULL, hi_v BLOB NOT NULL,
        PRIMARY KEY(key_id, base, page)) WITHOUT ROWID;
    """,
]
