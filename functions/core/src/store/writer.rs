//! The process's one writer: a thread that owns the writing connection and runs the
//! writes queued to it, those waiting together in one `BEGIN IMMEDIATE` transaction
//! (a group commit: one lock, one sync to disk for all of them). Each write runs in a
//! savepoint of its own, so one that fails is undone alone; each learns its outcome
//! only once the transaction is committed (a build is accepted only once it is on
//! disk). Writers of one process thus queue here in order instead of busy-waiting on
//! each other; another process's lock is waited out by SQLite's busy handler when the
//! transaction begins.
//!
//! Each write says what it must survive ([`Durability`]). In WAL mode a transaction
//! whose writes must all survive only a crash of the process commits without syncing
//! to disk (`synchronous=NORMAL`): a power cut may undo it, and everything committed
//! after it, but never corrupts the database or reorders commits (the WAL is synced as
//! a prefix by the next commit that must survive power loss). In DELETE mode (a shared
//! volume) every commit syncs: there, a commit without a sync may corrupt the file.

use std::{
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    sync::mpsc::{Sender, channel},
};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{JournalMode, StoreError, connect};

/// Writes run together in one transaction at most.
const BATCH: usize = 64;

/// What a committed write must survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Durability {
    /// A power cut: the commit is synced to disk before the write's caller hears of
    /// it. For what Sparky promises to keep: an accepted build, a build's end.
    PowerLoss,
    /// A crash of the process, not a power cut, which may undo it (together with
    /// everything committed after it). For steps whose loss the lifecycle recovers
    /// from: a claim or a start (the build goes back to the queue), a lease renewal,
    /// a follow-up marked done (done again), the outbox's cursor and claims (derived
    /// and taken again).
    ProcessCrash,
}

/// One queued write.
pub(super) trait Write: Send {
    /// What its commit must survive.
    fn durability(&self) -> Durability;
    /// Runs it inside the open transaction, keeping its result.
    fn run(&mut self, conn: &Connection);
    /// Delivers its outcome: its result once committed (`None`), else the error that
    /// stopped the transaction.
    fn deliver(self: Box<Self>, failure: Option<StoreError>);
}

struct Pending<T, F> {
    durability: Durability,
    f: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run(&mut self, conn: &Connection) {
        if let Some(f) = self.f.take() {
            self.result = Some(in_savepoint(conn, f));
        }
    }

    fn deliver(self: Box<Self>, failure: Option<StoreError>) {
        let outcome = match (failure, self.result) {
            (Some(error), _) => Err(error),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::WriterGone),
        };
        // The caller may have stopped waiting: nothing to tell.
        let _ = self.reply.send(outcome);
    }
}

/// Queues a write `f` and waits for its committed outcome.
pub(super) async fn submit<T, F>(
    queue: &Sender<Box<dyn Write>>,
    durability: Durability,
    f: F,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    let (reply, outcome) = oneshot::channel();
    queue
        .send(Box::new(Pending { durability, f: Some(f), result: None, reply }))
        .map_err(|_| StoreError::WriterGone)?;
    outcome.await.map_err(|_| StoreError::WriterGone)?
}

/// Runs `f` in a savepoint: released when it succeeds, rolled back when it fails (or
/// panics, which becomes [`StoreError::WriterGone`] for it alone).
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    run_cached(conn, "SAVEPOINT write")?;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| {
        tracing::error!("a database write panicked; it was undone");
        Err(StoreError::WriterGone)
    });
    match &result {
        Ok(_) => run_cached(conn, "RELEASE write")?,
        Err(_) => {
            run_cached(conn, "ROLLBACK TO write")?;
            run_cached(conn, "RELEASE write")?
        }
    }
    result
}

/// Starts the writer thread for the database at `path`; it ends when every sender
/// of the returned queue is gone.
pub(super) fn start(path: PathBuf, journal: JournalMode) -> Sender<Box<dyn Write>> {
    let (queue, writes) = channel::<Box<dyn Write>>();
    let spawned = std::thread::Builder::new().name("sparky-db-writer".into()).spawn(move || {
        let mut conn: Option<Connection> = None;
        while let Ok(first) = writes.recv() {
            let mut batch = vec![first];
            batch.extend(writes.try_iter().take(BATCH - 1));
            run_batch(&mut conn, &path, journal, batch);
        }
    });
    if let Err(error) = spawned {
        // Without the thread the queue's receiver is gone: every write says so.
        tracing::error!(%error, "could not start the database writer thread");
    }
    queue
}

/// Runs `batch` in one transaction on `conn` (opened if needed) and delivers each
/// outcome after the commit; when the transaction cannot begin or commit, each gets
/// that error. A connection left inside a transaction is closed (opened again next).
fn run_batch(
    conn: &mut Option<Connection>,
    path: &Path,
    journal: JournalMode,
    mut batch: Vec<Box<dyn Write>>,
) {
    let opened = match conn.take() {
        Some(open) => Ok(open),
        None => connect(path, journal),
    };
    let c = match opened {
        Ok(c) => c,
        Err(error) => return fail(batch, &error),
    };
    // Set outside the transaction (SQLite refuses to change it inside one).
    if let Err(error) = run_cached(&c, sync_level(journal, batch.iter().map(|w| w.durability()))) {
        return fail(batch, &StoreError::from(error));
    }
    if let Err(error) = run_cached(&c, "BEGIN IMMEDIATE") {
        fail(batch, &StoreError::from(error));
    } else {
        for write in &mut batch {
            write.run(&c);
        }
        match run_cached(&c, "COMMIT") {
            Ok(()) => batch.into_iter().for_each(|write| write.deliver(None)),
            Err(error) => {
                let _ = c.execute_batch("ROLLBACK");
                fail(batch, &StoreError::from(error));
            }
        }
    }
    if c.is_autocommit() {
        *conn = Some(c);
    }
}

/// How a transaction of writes that must survive `needs` is synced: without waiting
/// for the disk only in WAL mode and when none of them must survive a power cut.
fn sync_level(journal: JournalMode, mut needs: impl Iterator<Item = Durability>) -> &'static str {
    if journal == JournalMode::Wal && needs.all(|d| d == Durability::ProcessCrash) {
        "PRAGMA synchronous = NORMAL"
    } else {
        "PRAGMA synchronous = FULL"
    }
}

/// Runs one statement without parameters, parsed once per connection.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn fail(batch: Vec<Box<dyn Write>>, error: &StoreError) {
    for write in batch {
        write.deliver(Some(error.same()));
    }
}

#[cfg(test)]
mod tests {
    use super::{Durability::*, JournalMode::*, sync_level};

    #[test]
    fn only_a_wal_batch_of_steps_the_lifecycle_recovers_skips_the_sync() {
        let full = "PRAGMA synchronous = FULL";
        assert_eq!(sync_level(Wal, [ProcessCrash, ProcessCrash].into_iter()), "PRAGMA synchronous = NORMAL");
        assert_eq!(
            sync_level(Wal, [ProcessCrash, PowerLoss].into_iter()),
            full,
            "one accepted build syncs all"
        );
        assert_eq!(sync_level(Wal, [PowerLoss].into_iter()), full);
        assert_eq!(sync_level(Delete, [ProcessCrash].into_iter()), full, "a rollback journal always syncs");
    }
}
