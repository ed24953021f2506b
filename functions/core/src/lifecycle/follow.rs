//! What must follow a build's status change (see [`super`]): the hub, the poke, and for
//! a terminal change `report.json` and pruning; and [`Ctx::follow_up_pending`], which
//! does the last two for changes whose process died before it could.

use std::{collections::BTreeSet, time::Duration};

use tokio::time::Instant;

use crate::{
    Ctx,
    error::error_chain,
    hub::HubEvent,
    model::{Build, BuildStatus, Event, Reason},
    reports::{self, Key, log::StoredLog, report::BuildReport},
    store::StoreError,
    time::now_ms,
};

/// A terminal event still pending this long was left by a process that died before
/// following it up (a live one takes milliseconds).
const STALE_FOLLOW_UP: Duration = Duration::from_secs(10);
/// Pending events followed up per pass.
const FOLLOW_UP_BATCH: u32 = 100;

impl Ctx {
    /// Does what must follow terminal changes whose process died before it could
    /// (their events are still pending a while after); returns how many it followed.
    pub async fn follow_up_pending(&self) -> Result<usize, StoreError> {
        let before = now_ms() - STALE_FOLLOW_UP.as_millis() as i64;
        let events = self.store.pending_events(before, FOLLOW_UP_BATCH).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let mut done = Vec::new();
        for event in &events {
            match ensure_report(self, event.build_id).await {
                Ok(()) => done.push(event.id),
                Err(problem) => tracing::warn!(build_id = event.build_id, %problem,
                    "could not store report.json of an ended build; will retry"),
            }
        }
        self.prune_projects(events.iter().map(|e| e.project.as_str())).await;
        let count = done.len();
        self.store.followed(done).await?;
        tracing::info!(count, "followed up ended builds left pending");
        Ok(count)
    }

    /// What must follow `events`, just committed by this process (see the module's
    /// doc); `report_stored`: the runner stored the ended builds' `report.json`.
    pub(super) async fn follow(&self, events: &[Event], report_stored: bool) {
        self.metrics.changed(events);
        let mut poke = false;
        for event in events {
            self.hub.publish(HubEvent::StatusChanged(event.build_id));
            // Back in the queue because run could not take it: poking would send it
            // straight back; the next sweep or trigger tries again.
            let undeliverable = matches!(event.reason, Reason::DeliveryFailed | Reason::ShutDown);
            poke |= (event.to == BuildStatus::Queued && !undeliverable) || event.to.is_terminal();
        }
        if poke {
            self.dispatch.poke();
        }
        let ended: Vec<&Event> = events.iter().filter(|e| e.to.is_terminal()).collect();
        if ended.is_empty() {
            return;
        }
        let mut done = Vec::new();
        for event in &ended {
            if !report_stored {
                let stored = match self.store.build(event.build_id).await {
                    Ok(Some(build)) => store_without_runner(self, &build).await,
                    Ok(None) => Ok(()),
                    Err(error) => Err(error_chain(&error)),
                };
                if let Err(problem) = stored {
                    // Left pending: a later sweep pass stores it.
                    tracing::warn!(build_id = event.build_id, %problem, "could not store report.json; will retry");
                    continue;
                }
            }
            done.push(event.id);
        }
        self.prune_projects(ended.iter().map(|e| e.project.as_str())).await;
        if report_stored {
            // A runner's result is never recorded pending (see the store's events).
            return;
        }
        if let Err(error) = self.store.followed(done).await {
            tracing::warn!(error = %error_chain(&error), "could not mark ended builds followed up; a sweep will");
        }
    }

    /// Prunes each project to its `keep_builds`.
    async fn prune_projects<'a>(&self, projects: impl Iterator<Item = &'a str>) {
        for project in projects.collect::<BTreeSet<_>>() {
            let keep = match self.projects.get(project).await {
                Ok(Some(found)) => match &found.config {
                    Ok(config) => config.keep_builds,
                    Err(_) => continue,
                },
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(project, %error, "could not read the project to prune it");
                    continue;
                }
            };
            if let Err(error) = self.prune(project, keep).await {
                tracing::warn!(project, error = %error_chain(&error), "pruning old builds failed");
            }
        }
    }
}

/// Stores `report.json` for a build that ended without a runner recording it: swept as
/// `lost`, or canceled before it started. Whatever log a vanished runner stored is
/// counted; such a report is marked incomplete.
pub(super) async fn store_without_runner(ctx: &Ctx, build: &Build) -> Result<(), String> {
    let events = ctx.store.build_events(build.id).await.map_err(|e| error_chain(&e))?;
    let log_size = match StoredLog::open(ctx.reports.as_ref(), &build.project, build.id).await {
        Ok(log) => log.size(),
        Err(_) => 0,
    };
    let problems = match build.status {
        BuildStatus::Lost => {
            vec!["the runner vanished before the build ended: its log may stop short, its artifacts were not stored".into()]
        }
        _ => Vec::new(),
    };
    let report = BuildReport::new(build, &events, log_size, problems.is_empty(), Vec::new(), problems);
    report.store(ctx.reports.as_ref(), Instant::now()).await
}

/// Makes sure an ended build's `report.json` says how it ended: when it is missing or
/// says another status (its process died before writing it, or a runner wrote it
/// before the sweep took the build), it is written again from the build's row.
pub(super) async fn ensure_report(ctx: &Ctx, build_id: i64) -> Result<(), String> {
    let build = match ctx.store.build(build_id).await {
        Ok(Some(build)) => build,
        Ok(None) => return Ok(()),
        Err(e) => return Err(error_chain(&e)),
    };
    let key = Key::report(&build.project, build.id).map_err(|e| error_chain(&e))?;
    if !build.status.is_terminal() {
        // Back in the queue: a report a runner wrote before losing the build is stale.
        return ctx.reports.delete_prefix(key.as_str()).await.map(|_| ()).map_err(|e| error_chain(&e));
    }
    let stored = reports::get_bytes(ctx.reports.as_ref(), &key).await.map_err(|e| error_chain(&e))?;
    let says = stored.as_deref().and_then(|bytes| serde_json::from_slice::<serde_json::Value>(bytes).ok());
    if says.as_ref().and_then(|doc| doc["status"].as_str()) == Some(build.status.as_str()) {
        return Ok(());
    }
    store_without_runner(ctx, &build).await
}
