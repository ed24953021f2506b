-- What lifecycle events make Sparky tell the outside world: commit statuses on Git
-- hosts (and, later, notifications). Derived from the events in order by whichever
-- process reads past `outbox.after`; one row per (event, target), so two processes
-- deriving at once make it once. Times are Unix milliseconds.
CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      INTEGER NOT NULL,
    build_id      INTEGER NOT NULL,
    -- What receives it, e.g. `status:github`.
    target        TEXT    NOT NULL,
    -- What to send (JSON), as derived when the event was read.
    payload       TEXT    NOT NULL,
    -- pending, sent, failed (refused, or given up), superseded (a newer one for the
    -- same build and target made it moot before it was sent).
    state         TEXT    NOT NULL DEFAULT 'pending',
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    -- A process is sending it until then; another may take it after.
    claimed_until INTEGER,
    -- The last answer, or why it failed: shown on the build's page.
    outcome       TEXT,
    created_at    INTEGER NOT NULL,
    done_at       INTEGER,
    UNIQUE (event_id, target)
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';
CREATE INDEX deliveries_by_build ON deliveries (build_id, target, id);

-- A target (a host's API) that asked to be left alone until a time (a rate limit):
-- none of its deliveries is sent before.
CREATE TABLE delivery_holds (
    target TEXT    PRIMARY KEY,
    until  INTEGER NOT NULL
);

-- How far the events were read into deliveries. Starts at the newest event: history
-- from before deliveries existed is not announced.
CREATE TABLE outbox (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    after INTEGER NOT NULL
);
INSERT INTO outbox (id, after) SELECT 1, COALESCE(MAX(id), 0) FROM events;
