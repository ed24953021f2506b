-- SCM polling: how many polls of a project were recorded. A build a poll queues carries
-- the count in its idempotency key: a poll retried after its record was lost queues
-- nothing twice, while a head that comes back in a later poll builds again.
ALTER TABLE scm_polls ADD COLUMN polls INTEGER NOT NULL DEFAULT 0;
