-- Each running build's job token, as a SHA-256 hash (hex): the token itself is only
-- ever in the job's environment. Valid while the build runs.
ALTER TABLE builds ADD COLUMN job_token_hash TEXT;
CREATE INDEX builds_by_job_token ON builds (job_token_hash) WHERE job_token_hash IS NOT NULL;
