//! The SQL of the build lifecycle: queue, claim, start, renew, finish, cancel, hand
//! back, and the sweep of builds whose lease ran out. Each status change is one
//! conditional `UPDATE` and the event that records it ([`super::events::record`]), in
//! one `BEGIN IMMEDIATE` transaction: concurrent processes can never move the same
//! build twice, and no change goes unrecorded.
//!
//! Only [`crate::lifecycle`] calls the changing methods (they are crate-private): it
//! also does what must follow each change.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::{
    Store, StoreError,
    builds::get,
    events::{Change, record},
};
use crate::model::{Build, BuildStatus, Event, Reason};

/// Builds holding a lease, per project (served by the partial index `builds_active`,
/// whose condition this must repeat exactly).
pub(super) const ACTIVE_PER_PROJECT: &str =
    "SELECT project, count(*) FROM builds WHERE status IN ('dispatched', 'running') GROUP BY project";

/// Queued builds in the order they may start (served by `builds_queued`).
pub(super) const CLAIM_CANDIDATES: &str = include_str!("sql/claim_candidates.sql");

/// What may run at once.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Builds dispatched or running, all projects together.
    pub global: usize,
    /// Per project; a project missing here is not dispatched.
    pub concurrency: HashMap<String, u32>,
}

/// A build moved from `queued` to `dispatched`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub build_id: i64,
    pub project: String,
    /// The number of this attempt.
    pub attempt: u32,
}

/// The answer to a lease renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Renewal {
    /// `false` when the build is no longer this runner's (swept, or finished).
    pub still_ours: bool,
    pub cancel_requested: bool,
}

/// The answer to a cancel request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was queued and is now `canceled`.
    Canceled(Event),
    /// It is dispatched or running; its runner will stop it.
    Requested,
    AlreadyFinished(BuildStatus),
    NotFound,
}

/// How a runner says its build ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ending {
    /// A terminal status.
    pub status: BuildStatus,
    pub exit_code: Option<i32>,
    /// Why it ended so, when the log alone doesn't say.
    pub error: Option<String>,
    /// Bytes of log stored.
    pub log_size: u64,
    /// Why its report is incomplete, if it is.
    pub report_error: Option<String>,
    /// When it ended (as its `report.json` says).
    pub finished_at: i64,
}

/// What taking a dispatched build for a runner did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// It is now `running` under the runner's lease.
    Running(Box<Build>, Event),
    /// A cancel was asked while it was dispatched: it is now `canceled`.
    Canceled(Event),
    /// It is not dispatched (a duplicate delivery, or it went back to the queue).
    NotDispatched,
}

/// The status, project and attempt of build `id`.
fn current(tx: &rusqlite::Connection, id: i64) -> Result<Option<(BuildStatus, String, u32)>, StoreError> {
    let row = tx
        .prepare_cached("SELECT status, project, attempt FROM builds WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, u32>(2)?)))
        .optional()?;
    let Some((status, project, attempt)) = row else { return Ok(None) };
    let status = status.parse().map_err(|e: crate::model::UnknownName| StoreError::Corrupt(e.to_string()))?;
    Ok(Some((status, project, attempt)))
}

impl Store {
    /// Claims the builds that may start now — priority first, then FIFO, within each
    /// project's concurrency and the global cap — and marks them `dispatched` with a
    /// lease held by `owner` until `now + lease_ms`.
    #[tracing::instrument(skip_all)]
    pub(crate) async fn claim(
        &self,
        limits: Limits,
        owner: String,
        now: i64,
        lease_ms: i64,
    ) -> Result<(Vec<Claim>, Vec<Event>), StoreError> {
        self.write_relaxed(move |tx| claim_in(tx, &limits, &owner, now, lease_ms)).await
    }

    /// Claims as [`Store::claim`] does and, in the same transaction, starts each build
    /// claimed as [`Store::start`] does, for the runner `runner(build id)` with a job
    /// token from `new_token` (the token, and the hash stored): for a process that runs
    /// what it claims. Each build's start (`Running`, or `Canceled` if a cancel was
    /// asked of it before) with its token, and every event, oldest first.
    pub(crate) async fn claim_and_start<T: Send + 'static>(
        &self,
        limits: Limits,
        owner: String,
        runner: impl Fn(i64) -> String + Send + 'static,
        mut new_token: impl FnMut() -> Result<(T, String), StoreError> + Send + 'static,
        now: i64,
        lease_ms: i64,
    ) -> Result<(Vec<(Start, T)>, Vec<Event>), StoreError> {
        self.write_relaxed(move |tx| {
            let (claims, mut events) = claim_in(tx, &limits, &owner, now, lease_ms)?;
            let mut starts = Vec::with_capacity(claims.len());
            for claim in claims {
                let id = claim.build_id;
                let (token, hash) = new_token()?;
                let start = start_in(tx, id, &runner(id), &hash, now, lease_ms)?;
                match &start {
                    Start::Running(_, event) | Start::Canceled(event) => events.push(event.clone()),
                    Start::NotDispatched => {}
                }
                starts.push((start, token));
            }
            Ok((starts, events))
        })
        .await
    }

    /// Hands a dispatched build back to the front of the queue (it never started:
    /// no retry is used). `None` if it was not dispatched.
    pub(crate) async fn requeue_dispatched(
        &self,
        build_id: i64,
        reason: Reason,
        now: i64,
    ) -> Result<Option<Event>, StoreError> {
        self.write(move |tx| {
            let row: Option<(String, u32)> = tx
                .prepare_cached(
                    "UPDATE builds SET status = 'queued', lease_owner = NULL, lease_until = NULL \
                     WHERE id = ?1 AND status = 'dispatched' RETURNING project, attempt",
                )?
                .query_row([build_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((project, attempt)) = row else { return Ok(None) };
            let change = Change {
                build_id,
                project: &project,
                from: Some(BuildStatus::Dispatched),
                to: BuildStatus::Queued,
                reason,
                attempt,
                at: now,
            };
            Ok(Some(record(tx, change)?))
        })
        .await
    }

    /// Moves a build from `dispatched` to `running` for `owner`; a build whose cancel
    /// was asked while it was dispatched ends `canceled` instead.
    #[tracing::instrument(skip_all, fields(build_id))]
    pub(crate) async fn start(
        &self,
        build_id: i64,
        owner: String,
        token_hash: String,
        now: i64,
        lease_ms: i64,
    ) -> Result<Start, StoreError> {
        self.write_relaxed(move |tx| start_in(tx, build_id, &owner, &token_hash, now, lease_ms)).await
    }

    /// Extends a running build's lease; tells whether it is still ours and whether
    /// someone asked to cancel it.
    pub(crate) async fn renew(
        &self,
        build_id: i64,
        owner: String,
        now: i64,
        lease_ms: i64,
    ) -> Result<Renewal, StoreError> {
        self.write_relaxed(move |tx| {
            let renewed = tx
                .prepare_cached(
                    "UPDATE builds SET lease_until = ?3 \
                     WHERE id = ?1 AND status = 'running' AND lease_owner = ?2",
                )?
                .execute(params![build_id, owner, now + lease_ms])?;
            let cancel: Option<bool> = tx
                .prepare_cached("SELECT cancel_requested FROM builds WHERE id = ?1")?
                .query_row([build_id], |r| r.get(0))
                .optional()?;
            Ok(Renewal { still_ours: renewed == 1, cancel_requested: cancel.unwrap_or(true) })
        })
        .await
    }

    /// Records the repository and commit a build checked out.
    pub async fn record_commit(&self, build_id: i64, scm: crate::model::ScmRef) -> Result<(), StoreError> {
        self.write_relaxed(move |tx| {
            tx.prepare_cached("UPDATE builds SET scm_url = ?2, scm_branch = ?3, scm_sha = ?4 WHERE id = ?1")?
                .execute(params![build_id, scm.url, scm.branch, scm.sha])?;
            Ok(())
        })
        .await
    }

    /// Whether someone asked to cancel a build (a read, cheap enough to ask often).
    pub async fn cancel_requested(&self, build_id: i64) -> Result<bool, StoreError> {
        self.call(move |conn| {
            let flag: Option<bool> = conn
                .prepare_cached("SELECT cancel_requested FROM builds WHERE id = ?1")?
                .query_row([build_id], |r| r.get(0))
                .optional()?;
            Ok(flag.unwrap_or(true))
        })
        .await
    }

    /// Records a running build's end. `None` if it was not running under `owner` any
    /// more (the sweep took it); the result is then not recorded.
    #[tracing::instrument(skip_all, fields(build_id, status = %ending.status))]
    pub(crate) async fn finish(
        &self,
        build_id: i64,
        owner: String,
        ending: Ending,
    ) -> Result<Option<Event>, StoreError> {
        let status = ending.status;
        let now = ending.finished_at;
        self.write(move |tx| {
            let row: Option<(String, u32)> = tx
                .prepare_cached(
                    "UPDATE builds SET status = ?3, exit_code = ?4, error = ?5, log_size = ?6, \
                     report_error = ?7, finished_at = ?8, lease_owner = NULL, lease_until = NULL \
                     WHERE id = ?1 AND status = 'running' AND lease_owner = ?2 RETURNING project, attempt",
                )?
                .query_row(
                    params![
                        build_id,
                        owner,
                        status.as_str(),
                        ending.exit_code,
                        ending.error,
                        ending.log_size as i64,
                        ending.report_error,
                        now
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((project, attempt)) = row else { return Ok(None) };
            let change = Change {
                build_id,
                project: &project,
                from: Some(BuildStatus::Running),
                to: status,
                reason: Reason::Finished,
                attempt,
                at: now,
            };
            Ok(Some(record(tx, change)?))
        })
        .await
    }

    /// Asks for a build to stop: a queued one is canceled at once, a dispatched or
    /// running one is flagged for its runner.
    #[tracing::instrument(skip_all, fields(build_id))]
    pub(crate) async fn request_cancel(&self, build_id: i64, now: i64) -> Result<CancelOutcome, StoreError> {
        self.write(move |tx| {
            let Some((status, project, attempt)) = current(tx, build_id)? else {
                return Ok(CancelOutcome::NotFound);
            };
            match status {
                BuildStatus::Queued => {
                    tx.prepare_cached(
                        "UPDATE builds SET status = 'canceled', cancel_requested = 1, finished_at = ?2, \
                         error = 'canceled before it started' WHERE id = ?1",
                    )?
                    .execute(params![build_id, now])?;
                    let change = Change {
                        build_id,
                        project: &project,
                        from: Some(BuildStatus::Queued),
                        to: BuildStatus::Canceled,
                        reason: Reason::Canceled,
                        attempt,
                        at: now,
                    };
                    Ok(CancelOutcome::Canceled(record(tx, change)?))
                }
                BuildStatus::Dispatched | BuildStatus::Running => {
                    tx.prepare_cached("UPDATE builds SET cancel_requested = 1 WHERE id = ?1")?
                        .execute([build_id])?;
                    Ok(CancelOutcome::Requested)
                }
                done => Ok(CancelOutcome::AlreadyFinished(done)),
            }
        })
        .await
    }

    /// Ends queued builds that can never run (their project is gone or disabled) as
    /// `canceled`, saying why.
    pub(crate) async fn end_queued(
        &self,
        ids: Vec<i64>,
        reason: Reason,
        now: i64,
    ) -> Result<Vec<Event>, StoreError> {
        self.write(move |tx| {
            let mut events = Vec::new();
            let error = format!("canceled before it started: {}", reason.describe());
            for id in ids {
                let row: Option<(String, u32)> = tx
                    .prepare_cached(
                        "UPDATE builds SET status = 'canceled', error = ?2, finished_at = ?3 \
                         WHERE id = ?1 AND status = 'queued' RETURNING project, attempt",
                    )?
                    .query_row(params![id, error, now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((project, attempt)) = row else { continue };
                events.push(record(
                    tx,
                    Change {
                        build_id: id,
                        project: &project,
                        from: Some(BuildStatus::Queued),
                        to: BuildStatus::Canceled,
                        reason,
                        attempt,
                        at: now,
                    },
                )?);
            }
            Ok(events)
        })
        .await
    }
}

/// Claims within `limits` in the open transaction `tx` (see [`Store::claim`]).
fn claim_in(
    tx: &rusqlite::Connection,
    limits: &Limits,
    owner: &str,
    now: i64,
    lease_ms: i64,
) -> Result<(Vec<Claim>, Vec<Event>), StoreError> {
    let mut active: HashMap<String, u32> = HashMap::new();
    {
        let mut stmt = tx.prepare_cached(ACTIVE_PER_PROJECT)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            active.insert(row.get(0)?, row.get(1)?);
        }
    }
    let mut running: usize = active.values().map(|n| *n as usize).sum();
    if running >= limits.global {
        return Ok((Vec::new(), Vec::new()));
    }
    let most = limits.concurrency.values().copied().max().unwrap_or(0).min(limits.global as u32);
    let candidates = tx
        .prepare_cached(CLAIM_CANDIDATES)?
        .query_map([most], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut claims = Vec::new();
    let mut events = Vec::new();
    let mut update = tx.prepare_cached(
        "UPDATE builds SET status = 'dispatched', lease_owner = ?2, lease_until = ?3, \
         attempt = attempt + 1 WHERE id = ?1 AND status = 'queued' RETURNING attempt",
    )?;
    for (build_id, project) in candidates {
        if running >= limits.global {
            break;
        }
        let Some(&allowed) = limits.concurrency.get(&project) else { continue };
        let busy = active.entry(project.clone()).or_default();
        if *busy >= allowed {
            continue;
        }
        let attempt: Option<u32> =
            update.query_row(params![build_id, owner, now + lease_ms], |r| r.get(0)).optional()?;
        let Some(attempt) = attempt else { continue };
        *busy += 1;
        running += 1;
        events.push(record(
            tx,
            Change {
                build_id,
                project: &project,
                from: Some(BuildStatus::Queued),
                to: BuildStatus::Dispatched,
                reason: Reason::Claimed,
                attempt,
                at: now,
            },
        )?);
        claims.push(Claim { build_id, project, attempt });
    }
    Ok((claims, events))
}

/// Starts build `build_id` in the open transaction `tx` (see [`Store::start`]).
fn start_in(
    tx: &rusqlite::Connection,
    build_id: i64,
    owner: &str,
    token_hash: &str,
    now: i64,
    lease_ms: i64,
) -> Result<Start, StoreError> {
    let Some((BuildStatus::Dispatched, project, attempt)) = current(tx, build_id)? else {
        return Ok(Start::NotDispatched);
    };
    let change = |to, reason| Change {
        build_id,
        project: &project,
        from: Some(BuildStatus::Dispatched),
        to,
        reason,
        attempt,
        at: now,
    };
    let canceled = tx
        .prepare_cached(
            "UPDATE builds SET status = 'canceled', finished_at = ?2, lease_owner = NULL, \
             lease_until = NULL, error = 'canceled before it started' \
             WHERE id = ?1 AND cancel_requested",
        )?
        .execute(params![build_id, now])?;
    if canceled == 1 {
        return Ok(Start::Canceled(record(tx, change(BuildStatus::Canceled, Reason::Canceled))?));
    }
    tx.prepare_cached(
        "UPDATE builds SET status = 'running', started_at = ?2, lease_owner = ?3, lease_until = ?4, \
         job_token_hash = ?5 WHERE id = ?1",
    )?
    .execute(params![build_id, now, owner, now + lease_ms, token_hash])?;
    let event = record(tx, change(BuildStatus::Running, Reason::Started))?;
    let build = get(tx, build_id)?.ok_or_else(|| StoreError::Corrupt("started build vanished".into()))?;
    Ok(Start::Running(Box::new(build), event))
}
