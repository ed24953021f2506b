-- Builds: one row per requested build. Times are Unix milliseconds.
CREATE TABLE builds (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    project          TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    trigger_kind     TEXT    NOT NULL,
    params           TEXT    NOT NULL DEFAULT '{}',
    description      TEXT,
    scm_url          TEXT,
    scm_branch       TEXT,
    scm_sha          TEXT,
    parent_build     INTEGER,
    idempotency_key  TEXT    UNIQUE,
    priority         INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    exit_code        INTEGER,
    error            TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_until      INTEGER,
    log_size         INTEGER
);

CREATE INDEX builds_by_project ON builds (project, id);
CREATE INDEX builds_live ON builds (status, priority, id)
    WHERE status IN ('queued', 'dispatched', 'running');
