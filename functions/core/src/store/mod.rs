//! The build store: SQLite, shared by every function (and, on Kubernetes, by every pod
//! through a ReadWriteMany volume). All of Sparky's SQL lives in this module.
//!
//! Rules that make one file safe for several processes (see DESIGN.md):
//! an explicit journal mode (`wal` on one host, `delete` on a shared volume),
//! `synchronous=FULL`, a busy timeout, short write transactions begun with
//! `BEGIN IMMEDIATE`, and numbered migrations applied under a write lock.
//! rusqlite is blocking, so every call runs on tokio's blocking pool.
//!
//! Within a process, writes go through one writer connection, taken in turn (a fair
//! queue, waited for without holding a thread); reads use pooled connections of their
//! own. Only another process's lock is waited out in SQLite's busy handler, and that in
//! short steps, so that a lock released is taken within a fraction of a millisecond.
//!
//! - [`builds`]: queueing, reading and pruning builds.
//! - [`history`]: history filtered by project, status, branch, trigger and text, a
//!   page at a time; the recent builds a project's trends are drawn from.
//! - [`transitions`]: the build lifecycle's status changes: queue, claim, start, lease,
//!   finish, cancel (called only by [`crate::lifecycle`]).
//! - [`lapses`]: attempts whose runner is gone: hand back, and the sweep of leases.
//! - [`events`]: the event each status change records, and reading them.
//! - [`scm`]: SCM polling state: heads seen, when each project is due, last errors.
//! - [`sessions`]: people's sessions in the UI.

mod builds;
mod deliveries;
mod events;
mod history;
mod lapses;
mod scm;
mod sessions;
mod transitions;
mod writer;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, config::DbConfig};
use writer::Durability;

pub use builds::{BuildPage, Inserted};
pub use deliveries::{Delivery, NewDelivery, Settle};
pub use history::{HistoryFilter, MIN_SEARCH, Recent};
pub use scm::{PollClaim, PollState};
pub use sessions::Session;
pub use transitions::{CancelOutcome, Claim, Ending, Limits, Renewal, Start};

/// How SQLite journals writes. WAL needs shared memory on one host, so a volume
/// shared by several pods must use the rollback journal (`delete`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalMode {
    Wal,
    Delete,
}

/// Numbered migrations; `PRAGMA user_version` records how many are applied.
const MIGRATIONS: &[&str] = &[
    include_str!("sql/0001_builds.sql"),
    include_str!("sql/0002_triggers.sql"),
    include_str!("sql/0003_reports.sql"),
    include_str!("sql/0004_events.sql"),
    include_str!("sql/0005_job_tokens.sql"),
    include_str!("sql/0006_sessions.sql"),
    include_str!("sql/0007_deliveries.sql"),
    include_str!("sql/0008_pull_requests.sql"),
    include_str!("sql/0009_poll_count.sql"),
    include_str!("sql/0010_scale.sql"),
    include_str!("sql/0011_history.sql"),
    include_str!("sql/0012_live_by_project.sql"),
    include_str!("sql/0013_ended_by_branch.sql"),
    include_str!("sql/0014_history_by_project_branch.sql"),
];

/// How long a statement waits for another process's lock before giving up with `Busy`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the health check's read waits for another process's lock: a probe must
/// answer fast, and a lock held that long is a writer at work, not a broken database.
const CHECK_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// How often the busy handler looks again for another process's lock to be gone: in
/// short steps at first (most writes take a millisecond or two), then in longer ones.
const BUSY_STEP: Duration = Duration::from_micros(250);
const BUSY_SHORT_STEPS: u32 = 200;
const BUSY_LONG_STEP: Duration = Duration::from_millis(1);

/// Connections kept open for reuse.
const POOL_SIZE: usize = 8;

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process held the lock past the busy timeout; the caller may retry.
    #[error("the database is busy")]
    Busy,
    #[error("database error")]
    Sqlite(#[source] rusqlite::Error),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    #[error("could not open the database at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database worker failed")]
    Join(#[from] tokio::task::JoinError),
    /// The writer thread is gone, or a write panicked (and was undone).
    #[error("the database writer failed")]
    WriterGone,
    /// A transaction of several writes could not be committed.
    #[error("the database write could not be committed: {0}")]
    Commit(String),
    /// A process without the state folder (a run pod reaching the state through
    /// dispatch) asked its store for something.
    #[error("this process has no database: it reaches Sparky's state through dispatch")]
    Detached,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if is_busy(&e) { StoreError::Busy } else { StoreError::Sqlite(e) }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// A handle to the build store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// No database: every call fails with [`StoreError::Detached`].
    detached: bool,
    journal: JournalMode,
    /// Reading connections kept for reuse.
    pool: Mutex<Vec<Connection>>,
    /// The queue of the process's writer thread, started on the first write.
    writer: std::sync::OnceLock<std::sync::mpsc::Sender<Box<dyn writer::Write>>>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: impl Into<PathBuf>, journal: JournalMode) -> Result<Store, StoreError> {
        let path = path.into();
        let inner =
            Inner { path, journal, detached: false, pool: Mutex::default(), writer: Default::default() };
        let store = Store { inner: Arc::new(inner) };
        store.call(migrate).await?;
        Ok(store)
    }

    /// A store with no database behind it, for a process that must not open one (a
    /// run pod on Kubernetes): every call fails with [`StoreError::Detached`].
    pub fn detached() -> Store {
        let inner = Inner {
            path: PathBuf::new(),
            journal: JournalMode::Delete,
            detached: true,
            pool: Mutex::default(),
            writer: Default::default(),
        };
        Store { inner: Arc::new(inner) }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the database can be read now (`/healthz`): a fresh connection, so that
    /// a file replaced or damaged under the pooled ones is seen, reads the schema
    /// version and a row of `builds`; it never creates a missing file. `Busy` when
    /// another process held a lock past a short wait. `Ok` for a process without a
    /// database.
    pub async fn check(&self) -> Result<(), StoreError> {
        if self.inner.detached {
            return Ok(());
        }
        let path = self.inner.path.clone();
        tokio::task::spawn_blocking(move || {
            let open = |source| StoreError::Open { path: path.clone(), source };
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = Connection::open_with_flags(&path, flags).map_err(open)?;
            conn.busy_timeout(CHECK_BUSY_TIMEOUT).map_err(open)?;
            conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
            conn.query_row("SELECT 1 FROM builds LIMIT 1", [], |_| Ok(())).optional()?;
            Ok(())
        })
        .await?
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.inner.detached {
            return Err(StoreError::Detached);
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.pool.lock().ok().and_then(|mut pool| pool.pop());
            let mut conn = match pooled {
                Some(conn) => conn,
                None => connect(&inner.path, inner.journal)?,
            };
            let result = f(&mut conn);
            // A connection left inside a transaction (a failed commit) is not reused.
            if conn.is_autocommit()
                && let Ok(mut pool) = inner.pool.lock()
                && pool.len() < POOL_SIZE
            {
                pool.push(conn);
            }
            result
        })
        .await?
    }

    /// Runs `f` as part of a short write transaction begun with `BEGIN IMMEDIATE`, on
    /// the process's writer thread (see [`writer`]): writers of one process queue there
    /// in order, and those waiting together share one transaction and one sync to disk.
    /// Returns once the transaction is committed and synced to disk.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_as(Durability::PowerLoss, f).await
    }

    /// [`Store::write`] for a step whose loss in a power cut the lifecycle recovers
    /// from (see [`Durability::ProcessCrash`]): in WAL mode its commit is not waited
    /// for on disk.
    async fn write_relaxed<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_as(Durability::ProcessCrash, f).await
    }

    async fn write_as<T, F>(&self, durability: Durability, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.inner.detached {
            return Err(StoreError::Detached);
        }
        let queue =
            self.inner.writer.get_or_init(|| writer::start(self.inner.path.clone(), self.inner.journal));
        writer::submit(queue, durability, f).await
    }
}

/// SQLite's busy handler: another process holds the lock; look again shortly, until
/// about [`BUSY_TIMEOUT`] has passed (SQLite's own handler sleeps up to 100 ms between
/// looks, which makes a queue of writers wait far longer than the lock is held).
fn wait_briefly(attempts: i32) -> bool {
    let attempts = attempts.max(0) as u32;
    let short = attempts.min(BUSY_SHORT_STEPS);
    let waited = BUSY_STEP * short + BUSY_LONG_STEP * (attempts - short);
    if waited >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(if attempts < BUSY_SHORT_STEPS { BUSY_STEP } else { BUSY_LONG_STEP });
    true
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

fn connect(path: &Path, journal: JournalMode) -> Result<Connection, StoreError> {
    let open = |source| StoreError::Open { path: path.to_path_buf(), source };
    let mut conn = Connection::open(path).map_err(open)?;
    conn.busy_handler(Some(wait_briefly)).map_err(open)?;
    let mode = match journal {
        JournalMode::Wal => "WAL",
        JournalMode::Delete => "DELETE",
    };
    // Switching the journal mode needs a moment without other writers; the busy
    // handler does not cover it, so retry briefly when several processes start at once.
    let mut attempts = 0;
    loop {
        match conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get::<_, String>(0)) {
            Ok(_) => break,
            Err(e) if attempts < 50 && is_busy(&e) => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(open(e)),
        }
    }
    // A page cache of 512 KiB per connection (SQLite's default is 2 MiB): with a long
    // history each of the pooled connections would fill its own with pages the OS
    // caches anyway, and the process's memory would grow with the history; Sparky's
    // queries each touch a few dozen pages.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -512;")
        .map_err(open)?;
    // Plans that don't depend on bound values: without this, SQLite compiles a
    // statement again each time a new value is bound to its `LIMIT ?` (cached
    // statements would be parsed and planned on every call).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(open)?;
    // Room for every statement Sparky runs (the default 16 is fewer than the writer
    // alone uses, and a statement pushed out is parsed again on its next use).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

impl StoreError {
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Busy)
    }

    /// The same error again, for each write of a transaction that failed as a whole.
    fn same(&self) -> StoreError {
        match self {
            StoreError::Busy => StoreError::Busy,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
                StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, message.clone()))
            }
            other => StoreError::Commit(crate::error::error_chain(other)),
        }
    }
}

/// Applies the migrations not yet recorded in `user_version`, under the write lock,
/// so that pods starting together apply each one exactly once.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied = tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?.max(0) as usize;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {applied}, newer than this Sparky knows ({}); upgrade Sparky",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tracing::info!(migration = index + 1, "applied database migration");
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod plans;
#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "testing"))]
impl Store {
    /// Tests: another connection takes the write lock and holds it for `hold` (as a
    /// writer in another process would), on a thread of its own. Returns once it holds
    /// the lock; join the handle to wait for its release.
    pub fn hold_write_lock(&self, hold: Duration) -> std::thread::JoinHandle<()> {
        let (path, journal) = (self.inner.path.clone(), self.inner.journal);
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let mut conn = connect(&path, journal).expect("a second connection");
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).expect("the write lock");
            let _ = locked_tx.send(());
            std::thread::sleep(hold);
            tx.rollback().expect("release the lock");
        });
        let _ = locked_rx.recv();
        holder
    }
}
