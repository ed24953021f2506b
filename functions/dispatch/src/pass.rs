//! One dispatch pass. Safe to run in several processes at once: every step is a
//! conditional transition in one short write transaction.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sparky_core::{
    Ctx,
    api::ApiError,
    hub::HubEvent,
    model::BuildStatus,
    reports::report,
    store::{Claim, Limits},
    time::now_ms,
};

use crate::Deliver;

/// What a pass did, as `POST /events/dispatch` answers it.
#[derive(Debug, Default, Serialize)]
pub struct PassReport {
    /// Builds whose lease expired: `[id, new status]`.
    pub swept: Vec<(i64, BuildStatus)>,
    /// Queued builds ended because their project is gone or disabled.
    pub dropped: Vec<i64>,
    /// Builds sent to run.
    pub dispatched: Vec<i64>,
}

/// Sweeps expired leases, ends queued builds that can never run, claims what may
/// start and hands each claim to `deliver`.
#[tracing::instrument(skip_all)]
pub async fn dispatch_once(ctx: &Ctx, deliver: &dyn Deliver) -> Result<PassReport, ApiError> {
    // Builds first, projects second: a build queued after this snapshot is left for the
    // next pass, and every build in it belongs to a project that existed when it was
    // queued, so a project missing from the later list was really removed.
    let live = ctx.store.live_builds().await?;
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

    for outcome in ctx.store.sweep(retries, now_ms()).await? {
        tracing::warn!(build_id = outcome.build_id, project = %outcome.project, status = %outcome.status,
            "lease expired: the runner vanished");
        ctx.hub.publish(HubEvent::StatusChanged(outcome.build_id));
        report.swept.push((outcome.build_id, outcome.status));
    }

    let mut gone = Vec::new();
    let mut off = Vec::new();
    for build in live.iter().filter(|b| b.status == BuildStatus::Queued) {
        let listed_off = disabled.contains(&build.project);
        if !listed_off && concurrency.contains_key(&build.project) {
            continue;
        }
        // Ask again right before ending it: the list may be a moment old.
        match ctx.projects.get(&build.project).await? {
            None => gone.push(build.id),
            Some(project) if project.config.as_ref().is_ok_and(|c| c.disabled) => off.push(build.id),
            Some(_) => {}
        }
    }
    for (ids, why) in [(gone, "its project no longer exists"), (off, "its project was disabled")] {
        if ids.is_empty() {
            continue;
        }
        ctx.store
            .end_queued(
                ids.clone(),
                BuildStatus::Canceled,
                format!("canceled before it started: {why}"),
                now_ms(),
            )
            .await?;
        for id in &ids {
            ctx.hub.publish(HubEvent::StatusChanged(*id));
        }
        report.dropped.extend(ids);
    }

    let limits = Limits { global: ctx.config.max_running, concurrency };
    let lease_ms = ctx.config.lease.as_millis() as i64;
    let claims: Vec<Claim> = ctx.store.claim(limits, ctx.config.instance.clone(), now_ms(), lease_ms).await?;
    for claim in claims {
        tracing::debug!(build_id = claim.build_id, project = %claim.project, "dispatching");
        ctx.hub.publish(HubEvent::StatusChanged(claim.build_id));
        report.dispatched.push(claim.build_id);
        deliver.deliver(claim);
    }
    // Builds that ended here, not in a runner, still get their report.json.
    let ended = report.swept.iter().filter(|(_, status)| status.is_terminal()).map(|(id, _)| *id);
    for id in ended.chain(report.dropped.iter().copied()) {
        report::store_without_runner(ctx, id).await;
    }
    Ok(report)
}
