-- What history shows and filters on. Who or what asked for a build (a pusher's login,
-- a crontab line, a trigger file, the API token or a person in the UI), and the
-- message of the commit it builds when the host said (a pull request's title).
ALTER TABLE builds ADD COLUMN triggered_by TEXT;
ALTER TABLE builds ADD COLUMN commit_message TEXT;

-- History filtered by status (all projects, or one), branch or trigger, newest first: each
-- page is a range of one index (keyset by id), whatever the size of history.
CREATE INDEX builds_by_status ON builds (status, id);
CREATE INDEX builds_by_project_status ON builds (project, status, id);
CREATE INDEX builds_by_branch ON builds (scm_branch, id) WHERE scm_branch IS NOT NULL;
-- (A project's builds by trigger use builds_by_trigger; every project's use this.)
CREATE INDEX builds_by_trigger_kind ON builds (trigger_kind, id);

-- Text search over descriptions and commit messages: a trigram index finds any
-- substring of three characters or more without reading history. Builds' text never
-- changes, so rows are indexed when inserted and removed when deleted (pruned).
CREATE VIRTUAL TABLE builds_text USING fts5(
    description, commit_message, content = 'builds', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO builds_text (builds_text) VALUES ('rebuild');
CREATE TRIGGER builds_text_insert AFTER INSERT ON builds BEGIN
    INSERT INTO builds_text (rowid, description, commit_message)
    VALUES (new.id, new.description, new.commit_message);
END;
CREATE TRIGGER builds_text_delete AFTER DELETE ON builds BEGIN
    INSERT INTO builds_text (builds_text, rowid, description, commit_message)
    VALUES ('delete', old.id, old.description, old.commit_message);
END;
