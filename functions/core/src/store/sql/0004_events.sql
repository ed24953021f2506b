-- The build lifecycle's events: every status change of every build, in the order the
-- changes were committed (AUTOINCREMENT: ids are never reused, so a reader's cursor
-- stays valid after builds are pruned). Times are Unix milliseconds.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    build_id    INTEGER NOT NULL,
    project     TEXT    NOT NULL,
    from_status TEXT,
    to_status   TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    -- 1 while what must follow a terminal change (report.json, pruning) is not known
    -- to be done: the process that made the change may have died before doing it.
    pending     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_by_build ON events (build_id, id);
CREATE INDEX events_pending ON events (id) WHERE pending = 1;

-- `attempt` counted the retries used; it keeps that meaning under its own name, and
-- `attempt` becomes the number of times the build was sent to a runner.
ALTER TABLE builds RENAME COLUMN attempt TO retries_used;
ALTER TABLE builds ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
UPDATE builds SET attempt = retries_used + (status != 'queued');
