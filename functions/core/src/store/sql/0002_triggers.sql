-- The projects a chain of downstream builds has gone through (a JSON array), so that
-- a cycle of downstream projects stops instead of looping.
ALTER TABLE builds ADD COLUMN chain TEXT NOT NULL DEFAULT '[]';
CREATE INDEX builds_by_trigger ON builds (project, trigger_kind, id);
CREATE INDEX builds_by_parent ON builds (parent_build) WHERE parent_build IS NOT NULL;

-- SCM polling: the last commit seen on each branch (or tag) of each polled project.
CREATE TABLE scm_heads (
    project  TEXT    NOT NULL,
    ref_name TEXT    NOT NULL,
    sha      TEXT    NOT NULL,
    seen_at  INTEGER NOT NULL,
    PRIMARY KEY (project, ref_name)
);

-- SCM polling: when each project is due, who is polling it, and how the last poll went.
CREATE TABLE scm_polls (
    project     TEXT    PRIMARY KEY,
    url         TEXT    NOT NULL,
    due_at      INTEGER NOT NULL DEFAULT 0,
    busy_until  INTEGER NOT NULL DEFAULT 0,
    checked_at  INTEGER,
    ok_at       INTEGER,
    failures    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
);
