//! Reading the database file directly, read-only, after every process stopped: the
//! builds, which of them ever reached `running` (from the `events` table when the
//! schema has one), and `PRAGMA integrity_check`.

use std::{collections::HashSet, path::Path, time::Duration};

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags};

/// One row of `builds`.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub project: String,
    pub status: String,
    pub idempotency_key: Option<String>,
}

/// What the database holds.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub builds: Vec<Row>,
    /// Builds with an event `to_status = 'running'`; `None` when there is no `events`
    /// table (an older schema).
    pub reached_running: Option<HashSet<i64>>,
    /// `PRAGMA integrity_check`'s rows joined: `ok` when all is well.
    pub integrity: String,
    /// A crashed writer's journal was still there and had to be rolled back (by a
    /// read-write open) before the file could be read.
    pub rolled_back_journal: bool,
}

fn open_read_only(db: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )?;
    connection.busy_timeout(Duration::from_secs(5))?;
    Ok(connection)
}

/// How many builds are still queued, dispatched or running.
pub fn live_count(db: &Path) -> anyhow::Result<i64> {
    let connection = open_read_only(db)?;
    Ok(connection.query_row(
        "SELECT count(*) FROM builds WHERE status IN ('queued', 'dispatched', 'running')",
        [],
        |r| r.get(0),
    )?)
}

/// Reads the whole database at `db` (every process using it stopped).
pub fn read(db: &Path) -> anyhow::Result<Snapshot> {
    match read_only(db) {
        Ok(snapshot) => Ok(snapshot),
        Err(first) => {
            // A hot journal (a writer killed mid-transaction, nobody opened the file
            // since) can only be rolled back by a connection that may write.
            let journal = db.with_extension("db-journal");
            if !journal.exists() {
                return Err(first);
            }
            let connection = Connection::open(db).context("opening read-write to roll back the journal")?;
            connection.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
            drop(connection);
            let mut snapshot = read_only(db).with_context(|| format!("after rolling back: {first:#}"))?;
            snapshot.rolled_back_journal = true;
            Ok(snapshot)
        }
    }
}

fn read_only(db: &Path) -> anyhow::Result<Snapshot> {
    let connection = open_read_only(db).with_context(|| format!("opening {}", db.display()))?;
    let builds = connection
        .prepare("SELECT id, project, status, idempotency_key FROM builds ORDER BY id")?
        .query_map([], |r| {
            Ok(Row { id: r.get(0)?, project: r.get(1)?, status: r.get(2)?, idempotency_key: r.get(3)? })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let has_events: bool = connection.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'events'",
        [],
        |r| r.get(0),
    )?;
    let reached_running = if has_events {
        let ids = connection
            .prepare("SELECT DISTINCT build_id FROM events WHERE to_status = 'running'")?
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<Result<HashSet<_>, _>>()?;
        Some(ids)
    } else {
        None
    };
    let integrity = connection
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?
        .join("; ");
    Ok(Snapshot { builds, reached_running, integrity, rolled_back_journal: false })
}
