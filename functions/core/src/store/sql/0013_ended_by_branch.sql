-- Notifications say `fixed` for the first success after a failure on the same branch:
-- the last ended build of a project's branch outside pull requests is one index search,
-- whatever the size of history (store::builds::PREVIOUS_ON_BRANCH repeats these terms).
CREATE INDEX builds_ended_by_branch ON builds (project, scm_branch, id)
    WHERE pull_number IS NULL AND status IN ('succeeded', 'failed', 'timed_out', 'lost');
