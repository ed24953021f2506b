-- Indexes and counters so that no frequent query's cost grows with history.
--
-- Queued builds only: the claim, the projects with a queue, a project's queue.
CREATE INDEX builds_queued ON builds (project, id) WHERE status = 'queued';
-- Builds holding a lease: the claim counts them per project, the sweep finds the
-- expired ones. Queries must say `status IN ('dispatched', 'running')` exactly.
CREATE INDEX builds_active ON builds (project, lease_until) WHERE status IN ('dispatched', 'running');

-- How many builds each project has, kept by triggers (so that every writer, whatever
-- its path, keeps it right): retention prunes only when a project has more than it
-- keeps, and then reads just the oldest rows.
CREATE TABLE project_builds (
    project TEXT    PRIMARY KEY,
    builds  INTEGER NOT NULL
);
INSERT INTO project_builds (project, builds) SELECT project, count(*) FROM builds GROUP BY project;
CREATE TRIGGER project_builds_insert AFTER INSERT ON builds BEGIN
    INSERT INTO project_builds (project, builds) VALUES (new.project, 1)
        ON CONFLICT (project) DO UPDATE SET builds = builds + 1;
END;
CREATE TRIGGER project_builds_delete AFTER DELETE ON builds BEGIN
    UPDATE project_builds SET builds = builds - 1 WHERE project = old.project;
END;
