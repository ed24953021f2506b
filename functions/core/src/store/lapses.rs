//! The ends of attempts whose runner is gone or never came: a runner handing its build
//! back as it shuts down, and the sweep of builds whose lease ran out. A build that
//! never started goes back to the front of the queue without using a retry; one that
//! started goes back while its project's `retries` allow, else ends `lost`; either
//! ends `canceled` if a cancel was asked. Each change records its event.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Store, StoreError,
    builds::queued_projects,
    events::{Change, record},
};
use crate::model::{BuildStatus, Event, Reason};

/// Whether any lease ran out before `?1` (served by the partial index `builds_active`,
/// whose condition this must repeat exactly).
pub(super) const ANY_EXPIRED: &str =
    "SELECT id FROM builds WHERE status IN ('dispatched', 'running') AND lease_until < ?1 LIMIT 1";

fn lease_expired(conn: &Connection, now: i64) -> Result<bool, StoreError> {
    let found: Option<i64> = conn.prepare_cached(ANY_EXPIRED)?.query_row([now], |r| r.get(0)).optional()?;
    Ok(found.is_some())
}

/// The builds whose lease ran out before `?1`.
pub(super) const EXPIRED: &str = "SELECT id, project, attempt, retries_used, cancel_requested, status \
     FROM builds WHERE status IN ('dispatched', 'running') AND lease_until < ?1";

impl Store {
    /// A running build whose runner is going away: back to the queue while `retries`
    /// allow, else `lost`. `None` if it was not running under `owner`.
    pub(crate) async fn hand_back(
        &self,
        build_id: i64,
        owner: String,
        retries: u32,
        now: i64,
    ) -> Result<Option<Event>, StoreError> {
        self.write(move |tx| {
            let ours: Option<(String, u32, u32, bool)> = tx
                .prepare_cached(
                    "SELECT project, attempt, retries_used, cancel_requested FROM builds \
                     WHERE id = ?1 AND status = 'running' AND lease_owner = ?2",
                )?
                .query_row(params![build_id, owner], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()?;
            let Some((project, attempt, used, cancel)) = ours else { return Ok(None) };
            let lapse = Lapse { build_id, project: &project, attempt, used, allowed: retries, cancel };
            Ok(Some(lapse.apply(tx, BuildStatus::Running, Reason::HandedBack, now)?))
        })
        .await
    }

    /// Whether any dispatched or running build's lease has run out by `now`.
    pub async fn any_lease_expired(&self, now: i64) -> Result<bool, StoreError> {
        self.call(move |conn| lease_expired(conn, now)).await
    }

    /// What a dispatch pass starts from, read at once: the projects with queued builds
    /// and whether any lease ran out before `now`.
    pub async fn pass_start(&self, now: i64) -> Result<(Vec<String>, bool), StoreError> {
        self.call(move |conn| Ok((queued_projects(conn)?, lease_expired(conn, now)?))).await
    }

    /// Finds dispatched or running builds whose lease ran out before `now`. One that
    /// never started goes back to the front of its project's queue without using a
    /// retry; one that started goes back while its project's `retries` allow, else
    /// ends `lost`; either ends `canceled` if a cancel was asked.
    #[tracing::instrument(skip_all)]
    pub(crate) async fn sweep(
        &self,
        retries: HashMap<String, u32>,
        now: i64,
    ) -> Result<Vec<Event>, StoreError> {
        // Most passes find nothing: look first without the write lock.
        if !self.any_lease_expired(now).await? {
            return Ok(Vec::new());
        }
        self.write(move |tx| {
            let expired = tx
                .prepare_cached(EXPIRED)?
                .query_map([now], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, u32>(3)?,
                        r.get::<_, bool>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut events = Vec::new();
            for (build_id, project, attempt, used, cancel, was) in expired {
                let allowed = retries.get(&project).copied().unwrap_or(0);
                let lapse = Lapse { build_id, project: &project, attempt, used, allowed, cancel };
                let event = if was == BuildStatus::Dispatched.as_str() {
                    lapse.apply(tx, BuildStatus::Dispatched, Reason::DeliveryLost, now)?
                } else {
                    lapse.apply(tx, BuildStatus::Running, Reason::RunnerVanished, now)?
                };
                events.push(event);
            }
            Ok(events)
        })
        .await
    }
}

/// A dispatched or running build whose runner is gone (or never came).
struct Lapse<'a> {
    build_id: i64,
    project: &'a str,
    attempt: u32,
    /// Retries used so far, and allowed by the project.
    used: u32,
    allowed: u32,
    cancel: bool,
}

impl Lapse<'_> {
    /// Ends the attempt: `canceled` if a cancel was asked; back to the queue if it never
    /// started (no retry used) or a retry is left; else `lost`.
    fn apply(
        &self,
        tx: &rusqlite::Connection,
        from: BuildStatus,
        reason: Reason,
        now: i64,
    ) -> Result<Event, StoreError> {
        let started = from == BuildStatus::Running;
        let to = if self.cancel {
            BuildStatus::Canceled
        } else if !started || self.used < self.allowed {
            BuildStatus::Queued
        } else {
            BuildStatus::Lost
        };
        if to == BuildStatus::Queued {
            tx.prepare_cached(
                "UPDATE builds SET status = 'queued', retries_used = retries_used + ?2, started_at = NULL, \
                 lease_owner = NULL, lease_until = NULL WHERE id = ?1",
            )?
            .execute(params![self.build_id, started as u32])?;
        } else {
            let error = match (to, started) {
                (BuildStatus::Canceled, false) => "canceled before it started".to_string(),
                (BuildStatus::Canceled, true) => {
                    format!("canceled; {} before it could stop the job", reason.describe())
                }
                _ => format!(
                    "{} on attempt {} ({} of {} retries used)",
                    reason.describe(),
                    self.attempt,
                    self.used,
                    self.allowed
                ),
            };
            tx.prepare_cached(
                "UPDATE builds SET status = ?2, error = ?3, finished_at = ?4, \
                 lease_owner = NULL, lease_until = NULL WHERE id = ?1",
            )?
            .execute(params![self.build_id, to.as_str(), error, now])?;
        }
        record(
            tx,
            Change {
                build_id: self.build_id,
                project: self.project,
                from: Some(from),
                to,
                reason,
                attempt: self.attempt,
                at: now,
            },
        )
    }
}
