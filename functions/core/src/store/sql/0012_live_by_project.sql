-- `/metrics` counts the builds not yet finished by status and project at every scrape:
-- this index holds live builds only and covers the count, so a scrape costs the live
-- builds, never history.
CREATE INDEX IF NOT EXISTS builds_live_by_project ON builds (status, project)
    WHERE status IN ('queued', 'dispatched', 'running');
