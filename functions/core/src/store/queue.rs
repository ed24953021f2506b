//! The build lifecycle: claim queued builds within the limits, start them, keep their
//! leases alive, finish them, cancel them, and sweep up builds whose runner vanished.
//!
//! Every transition is one conditional `UPDATE` inside a `BEGIN IMMEDIATE` transaction,
//! so that concurrent processes can never move the same build twice.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, builds::get};
use crate::model::{Build, BuildStatus};

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
}

/// The answer to a lease renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// `false` when the build is no longer this runner's (swept as lost, or finished).
    pub still_ours: bool,
    pub cancel_requested: bool,
}

/// The answer to a cancel request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was queued and is now `canceled`.
    Canceled,
    /// It is dispatched or running; its runner will stop it.
    Requested,
    AlreadyFinished(BuildStatus),
    NotFound,
}

/// What the sweep did with a build whose lease expired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepOutcome {
    pub build_id: i64,
    pub project: String,
    pub status: BuildStatus,
}

const LIVE_ACTIVE: &str = "('dispatched', 'running')";

impl Store {
    /// Claims the builds that may start now — priority first, then FIFO, within each
    /// project's concurrency and the global cap — and marks them `dispatched` with a
    /// lease held by `owner` until `now + lease_ms`.
    #[tracing::instrument(skip_all)]
    pub async fn claim(
        &self,
        limits: Limits,
        owner: String,
        now: i64,
        lease_ms: i64,
    ) -> Result<Vec<Claim>, StoreError> {
        self.write(move |tx| {
            let mut active: HashMap<String, u32> = HashMap::new();
            {
                let sql = format!(
                    "SELECT project, count(*) FROM builds WHERE status IN {LIVE_ACTIVE} GROUP BY project"
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    active.insert(row.get(0)?, row.get(1)?);
                }
            }
            let mut running: usize = active.values().map(|n| *n as usize).sum();
            if running >= limits.global {
                return Ok(Vec::new());
            }
            let candidates = tx
                .prepare_cached(include_str!("sql/claim_candidates.sql"))?
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut claimed = Vec::new();
            let mut update = tx.prepare_cached(
                "UPDATE builds SET status = 'dispatched', lease_owner = ?2, lease_until = ?3 \
                 WHERE id = ?1 AND status = 'queued'",
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
                if update.execute(params![build_id, owner, now + lease_ms])? == 1 {
                    *busy += 1;
                    running += 1;
                    claimed.push(Claim { build_id, project });
                }
            }
            Ok(claimed)
        })
        .await
    }

    /// Hands a dispatched build back to the queue when it could not be delivered at all.
    pub async fn requeue_undelivered(&self, build_id: i64) -> Result<bool, StoreError> {
        self.write(move |tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE builds SET status = 'queued', lease_owner = NULL, lease_until = NULL \
                     WHERE id = ?1 AND status = 'dispatched'",
                )?
                .execute([build_id])?;
            Ok(changed == 1)
        })
        .await
    }

    /// Moves a build from `dispatched` to `running` for `owner`. `None` when it is not
    /// dispatched any more (a duplicate delivery, or canceled meanwhile): do nothing.
    /// A build whose cancel was asked while dispatched ends `canceled` here.
    #[tracing::instrument(skip_all, fields(build_id))]
    pub async fn start(
        &self,
        build_id: i64,
        owner: String,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<Build>, StoreError> {
        self.write(move |tx| {
            let canceled = tx
                .prepare_cached(
                    "UPDATE builds SET status = 'canceled', finished_at = ?2, lease_owner = NULL, \
                     lease_until = NULL WHERE id = ?1 AND status = 'dispatched' AND cancel_requested",
                )?
                .execute(params![build_id, now])?;
            if canceled == 1 {
                return Ok(None);
            }
            let started = tx
                .prepare_cached(
                    "UPDATE builds SET status = 'running', started_at = ?2, lease_owner = ?3, \
                     lease_until = ?4 WHERE id = ?1 AND status = 'dispatched'",
                )?
                .execute(params![build_id, now, owner, now + lease_ms])?;
            if started == 1 { get(tx, build_id) } else { Ok(None) }
        })
        .await
    }

    /// Extends a running build's lease; tells whether it is still ours and whether
    /// someone asked to cancel it.
    pub async fn renew(
        &self,
        build_id: i64,
        owner: String,
        now: i64,
        lease_ms: i64,
    ) -> Result<Renewal, StoreError> {
        self.write(move |tx| {
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
        self.write(move |tx| {
            tx.prepare_cached("UPDATE builds SET scm_url = ?2, scm_branch = ?3, scm_sha = ?4 WHERE id = ?1")?
                .execute(params![build_id, scm.url, scm.branch, scm.sha])?;
            Ok(())
        })
        .await
    }

    /// Gives a running build's lease up at once (its runner is going away): the next
    /// sweep requeues it or ends it `lost`. `false` if it was not running under `owner`.
    pub async fn release(&self, build_id: i64, owner: String) -> Result<bool, StoreError> {
        self.write(move |tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE builds SET lease_until = 0 WHERE id = ?1 AND status = 'running' AND lease_owner = ?2",
                )?
                .execute(params![build_id, owner])?;
            Ok(changed == 1)
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

    /// Records a running build's end. `false` if it was not running under `owner`
    /// any more (the sweep took it); the result is then not recorded.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(skip_all, fields(build_id, status = %status))]
    pub async fn finish(
        &self,
        build_id: i64,
        owner: String,
        status: BuildStatus,
        exit_code: Option<i32>,
        error: Option<String>,
        log_size: u64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.write(move |tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE builds SET status = ?3, exit_code = ?4, error = ?5, log_size = ?6, \
                     finished_at = ?7, lease_owner = NULL, lease_until = NULL \
                     WHERE id = ?1 AND status = 'running' AND lease_owner = ?2",
                )?
                .execute(params![build_id, owner, status.as_str(), exit_code, error, log_size as i64, now])?;
            Ok(changed == 1)
        })
        .await
    }

    /// Asks for a build to stop: a queued one is canceled at once, a dispatched or
    /// running one is flagged for its runner.
    #[tracing::instrument(skip_all, fields(build_id))]
    pub async fn request_cancel(&self, build_id: i64, now: i64) -> Result<CancelOutcome, StoreError> {
        self.write(move |tx| {
            let Some(build) = get(tx, build_id)? else { return Ok(CancelOutcome::NotFound) };
            match build.status {
                BuildStatus::Queued => {
                    tx.prepare_cached(
                        "UPDATE builds SET status = 'canceled', cancel_requested = 1, finished_at = ?2 \
                         WHERE id = ?1 AND status = 'queued'",
                    )?
                    .execute(params![build_id, now])?;
                    Ok(CancelOutcome::Canceled)
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

    /// Ends queued builds that can never run (their project is gone), saying why.
    pub async fn end_queued(
        &self,
        ids: Vec<i64>,
        status: BuildStatus,
        error: String,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE builds SET status = ?2, error = ?3, finished_at = ?4 \
                 WHERE id = ?1 AND status = 'queued'",
            )?;
            for id in ids {
                stmt.execute(params![id, status.as_str(), error, now])?;
            }
            Ok(())
        })
        .await
    }

    /// Finds dispatched or running builds whose lease expired before `now`: each goes
    /// back to the queue while its project's `retries` allow, else ends `lost`
    /// (or `canceled`, if a cancel was asked).
    #[tracing::instrument(skip_all)]
    pub async fn sweep(
        &self,
        retries: HashMap<String, u32>,
        now: i64,
    ) -> Result<Vec<SweepOutcome>, StoreError> {
        self.write(move |tx| {
            let sql = format!(
                "SELECT id, project, attempt, cancel_requested, status FROM builds \
                 WHERE status IN {LIVE_ACTIVE} AND lease_until < ?1"
            );
            let expired = tx
                .prepare_cached(&sql)?
                .query_map([now], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut outcomes = Vec::new();
            for (build_id, project, attempt, cancel, was) in expired {
                let allowed = retries.get(&project).copied().unwrap_or(0);
                let status = if cancel {
                    BuildStatus::Canceled
                } else if attempt < allowed {
                    BuildStatus::Queued
                } else {
                    BuildStatus::Lost
                };
                if status == BuildStatus::Queued {
                    tx.prepare_cached(
                        "UPDATE builds SET status = 'queued', attempt = attempt + 1, started_at = NULL, \
                         lease_owner = NULL, lease_until = NULL WHERE id = ?1",
                    )?
                    .execute([build_id])?;
                } else {
                    let error = format!(
                        "the runner stopped renewing its lease while the build was {was} \
                         (attempt {} of {})",
                        attempt + 1,
                        allowed + 1
                    );
                    tx.prepare_cached(
                        "UPDATE builds SET status = ?2, error = ?3, finished_at = ?4, \
                         lease_owner = NULL, lease_until = NULL WHERE id = ?1",
                    )?
                    .execute(params![build_id, status.as_str(), error, now])?;
                }
                outcomes.push(SweepOutcome { build_id, project, status });
            }
            Ok(outcomes)
        })
        .await
    }
}
