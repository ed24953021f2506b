//! Filling a root's history fast: rows inserted straight into `sparky.db`, whose schema
//! the `sparky` binary created on a first start. The bench's own path: a million
//! builds through the API would take longer than the bench. Only `builds` rows are
//! written (finished, with no reports and no events, as pruned-to-rows history looks to
//! the queries that matter here); the binary's triggers keep their counts.

use std::{path::Path, time::Instant};

use anyhow::Context as _;

/// The project that holds half of history (and whose builds the latency probe runs).
pub const BIG: &str = "big";

/// The other projects of history, `p01`..`p99`: with [`BIG`], 100.
pub fn small_projects() -> Vec<String> {
    (1..100).map(|n| format!("p{n:02}")).collect()
}

/// Inserts `total` finished builds into the database at `db`: half in [`BIG`], the
/// rest spread over [`small_projects`], oldest first, one transaction. Returns how long
/// it took.
pub fn fill(db: &Path, total: u64) -> anyhow::Result<std::time::Duration> {
    let started = Instant::now();
    let mut conn = rusqlite::Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")?;
    let small = small_projects();
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO builds (project, status, trigger_kind, params, created_at, started_at, \
             finished_at, exit_code, attempt, log_size) VALUES (?1, ?2, ?3, '{}', ?4, ?4 + 5, ?4 + 900, ?5, 1, 120)",
        )?;
        // A day of history per 86,400 builds, ending a day ago.
        let base = chrono::Utc::now().timestamp_millis() - 86_400_000 - total as i64 * 1000;
        for n in 0..total {
            let project = if n % 2 == 0 { BIG } else { small[(n / 2) as usize % small.len()].as_str() };
            let (status, code) = if n % 10 == 9 { ("failed", 1) } else { ("succeeded", 0) };
            let kind = ["api", "cron", "webhook", "scm"][(n / 2 % 4) as usize];
            insert.execute(rusqlite::params![project, status, kind, base + n as i64 * 1000, code])?;
        }
    }
    tx.commit()?;
    // On disk before the probes start: with the fill's writes still in the page cache,
    // the first fsync of the measured process would wait for all of them.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(started.elapsed())
}
