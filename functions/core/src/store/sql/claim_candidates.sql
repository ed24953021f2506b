-- Queued builds in the order they may start: higher priority first, then FIFO.
SELECT id, project
FROM builds
WHERE status = 'queued'
ORDER BY priority DESC, id ASC
