//! One dispatch pass. Safe to run in several processes at once: every step is a
//! conditional transition of the lifecycle in one short write transaction.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use sparky_core::{
    Ctx,
    model::{BuildStatus, Reason},
    store::{Limits, StoreError},
    time::now_ms,
};

use crate::Handoff;

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
pub async fn dispatch_once(ctx: &Ctx, handoff: &Handoff, follow_up: bool) -> Result<PassReport, PassError> {
    // Builds first, projects second: every project looked up below had a build queued
    // before the lookup, so one that is missing then was really removed.
    let (waiting, lease_expired) = ctx.store.pass_start(now_ms()).await?;
    let mut report = PassReport::default();
    let mut names: BTreeSet<String> = waiting.iter().cloned().collect();

    // Leases run out rarely: the projects' `retries` are read only when one did.
    if lease_expired {
        let retries = ctx
            .projects
            .list()
            .await?
            .into_iter()
            .filter_map(|p| p.config.ok().filter(|c| !c.disabled).map(|c| (p.name, c.retries)))
            .collect();
        for event in ctx.sweep_leases(retries).await? {
            report.swept.push((event.build_id, event.to));
            names.insert(event.project);
        }
    }

    // Only projects with queued builds can have one claimed: those are looked up (a
    // few files), not every project.
    let found = ctx.projects.get_many(names.into_iter().collect()).await?;
    let mut concurrency = HashMap::new();
    let mut off = Vec::new();
    for project in &found {
        match &project.config {
            Ok(config) if config.disabled => off.extend(ctx.store.queued_ids(&project.name).await?),
            Ok(config) => {
                concurrency.insert(project.name.clone(), config.concurrency);
            }
            // run fails such a build with the config error in its log.
            Err(_) => {
                concurrency.insert(project.name.clone(), 1);
            }
        }
    }
    let mut gone = Vec::new();
    for name in waiting.iter().filter(|name| !found.iter().any(|p| &p.name == *name)) {
        gone.extend(ctx.store.queued_ids(name).await?);
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
    match handoff {
        // Not while shutting down: a build started now would be canceled at once.
        Handoff::RunHere(_) if !queued || ctx.shutdown.is_cancelled() => {}
        Handoff::RunHere(here) => {
            for started in ctx.claim_and_start(limits).await? {
                tracing::debug!(build_id = started.build.id, project = %started.build.project, "starting here");
                report.dispatched.push(started.build.id);
                here.run(started);
            }
        }
        Handoff::Deliver(deliver) => {
            let claims = if queued { ctx.claim_builds(limits).await? } else { Vec::new() };
            for claim in claims {
                tracing::debug!(build_id = claim.build_id, project = %claim.project, attempt = claim.attempt, "dispatching");
                report.dispatched.push(claim.build_id);
                deliver.deliver(claim);
            }
        }
    }
    if follow_up {
        report.followed_up = ctx.follow_up_pending().await?;
    }
    Ok(report)
}
