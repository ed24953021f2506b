-- Queued builds in the order they may start — higher priority first, then FIFO — at
-- most ?1 of each project (no project can start more at once), so that a long queue
-- of one project costs one pass nothing more than its first few rows.
SELECT id, project
FROM (
    SELECT id, project, priority,
           row_number() OVER (PARTITION BY project ORDER BY priority DESC, id ASC) AS place
    FROM builds
    WHERE status = 'queued'
)
WHERE place <= ?1
ORDER BY priority DESC, id ASC
