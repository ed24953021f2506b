-- A project's builds of one branch, newest first: a range of this index, where
-- builds_by_branch read that branch's builds of every project to find the page.
CREATE INDEX IF NOT EXISTS builds_by_project_branch ON builds (project, scm_branch, id)
    WHERE scm_branch IS NOT NULL;
