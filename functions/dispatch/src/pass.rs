//! One dispatch pass. Safe to run in several processes at once: every step is a
//! conditional transition of the lifecycle in one short write transaction.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sparky_core::{
    Ctx,
    model::{BuildStatus, Reason},
    store::{Limits, StoreError},
};

use crate::Deliver;

/// What a pass did, as `POST /events/dispatch` answers it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PassReport {
    /// Builds whose lease ran out: `[id, new status]`.
    pub swept: Vec<(i64, BuildStatus)>,
    /// Queued builds ended because their project is gone or disabled.
    pub dropped: Vec<i64>,
    /// Builds sent to run.
    pub dispatched: Vec<i64>,
    /// Ended builds whose follow-ups (report.json, pruning) a dead process left undone.
    pub followed_up: usize,
}

/// Why a pass failed; the next pass tries again.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("the build store failed")]
    Store(#[from] StoreError),
    #[error("could not read the projects")]
    Projects(#[from] std::io::Error),
    #[error("dispatch is shutting down")]
    ShuttingDown,
    /// A pass run for this request (in its own task) failed; its log says why.
    #[error("the dispatch pass failed: {0}")]
    Failed(String),
}

/// Sweeps expired leases, ends queued builds that can never run, claims what may
/// start and hands each claim to `deliver`; with `follow_up`, also does what dead
/// processes left undone after ending builds.
#[tracing::instrument(skip_all)]
pub async fn dispatch_once(
    ctx: &Ctx,
    deliver: &dyn Deliver,
    follow_up: bool,
) -> Result<PassReport, PassError> {
    // Builds first, projects second: a build queued after this snapshot is left for the
    // next pass, and every build in it belongs to a project that existed when it was
    // queued, so a project missing from the later list was really removed.
    let waiting = ctx.store.queued_projects().await?;
    let projects = ctx.projects.list().await?;
    let mut concurrency = HashMap::new();
    let mut retries = HashMap::new();
    let mut disabled = HashSet::new();
    for project in &projects {
        match &project.config {
            Ok(config) if config.disabled => {
                disabled.insert(project.name.clone());
            }
            Ok(config) => {
                concurrency.insert(project.name.clone(), config.concurrency);
                retries.insert(project.name.clone(), config.retries);
            }
            // run fails such a build with the config error in its log.
            Err(_) => {
                concurrency.insert(project.name.clone(), 1);
            }
        }
    }
    let mut report = PassReport::default();

    for event in ctx.sweep_leases(retries).await? {
        report.swept.push((event.build_id, event.to));
    }

    let mut gone = Vec::new();
    let mut off = Vec::new();
    for name in &waiting {
        if !disabled.contains(name) && concurrency.contains_key(name) {
            continue;
        }
        // Ask again right before ending its builds: the list may be a moment old.
        let ended = match ctx.projects.get(name).await? {
            None => &mut gone,
            Some(project) if project.config.as_ref().is_ok_and(|c| c.disabled) => &mut off,
            Some(_) => continue,
        };
        ended.extend(ctx.store.queued_ids(name).await?);
    }
    for (ids, reason) in [(gone, Reason::ProjectGone), (off, Reason::ProjectDisabled)] {
        if !ids.is_empty() {
            report.dropped.extend(ctx.drop_queued(ids, reason).await?);
        }
    }

    // Claiming takes the write lock: only when the snapshot had something to claim (a
    // build queued since poked dispatch after it was committed, so another pass follows).
    let queued = !waiting.is_empty() || !report.swept.is_empty();
    let limits = Limits { global: ctx.config.max_running, concurrency };
    let claims = if queued { ctx.claim_builds(limits).await? } else { Vec::new() };
    for claim in claims {
        tracing::debug!(build_id = claim.build_id, project = %claim.project, attempt = claim.attempt, "dispatching");
        report.dispatched.push(claim.build_id);
        deliver.deliver(claim);
    }
    if follow_up {
        report.followed_up = ctx.follow_up_pending().await?;
    }
    Ok(report)
}
