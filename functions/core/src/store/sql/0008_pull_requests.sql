-- The pull (merge) request a build is for, as JSON (see model::PullRequest); NULL for
-- every other build. Indexed by project and number, to find a request's older builds.
ALTER TABLE builds ADD COLUMN pull_request TEXT;
ALTER TABLE builds ADD COLUMN pull_number INTEGER;
CREATE INDEX builds_by_pull ON builds (project, pull_number) WHERE pull_number IS NOT NULL;
