//! The outbox: what lifecycle events make Sparky tell the outside world — commit
//! statuses on Git hosts ([`status`]), notifications of how builds end ([`notify`],
//! by mail through [`email`]) —
//! derived from the events table in commit order and delivered with retries
//! ([`send`]).
//!
//! Guarantees, across restarts and several processes on one database:
//! - every event is read into deliveries once: the cursor (`outbox.after`) and the
//!   deliveries move in one transaction, and a delivery is unique per event and target;
//! - a delivery is sent by one process at a time (a claim for [`CLAIM`]); it is sent
//!   again only if its sender died mid-request before recording the answer;
//! - for one build and target, deliveries go in order, and one not yet sent is
//!   dropped (`superseded`) when a newer one comes: a host that was down gets the
//!   build's latest state, once;
//! - failures on the way (5xx, timeouts, refused connections) are retried with backoff
//!   for up to [`MAX_ATTEMPTS`] tries (a host that took a request and answered too
//!   late gets the same delivery again: sending is at least once); a host's rate limit
//!   (429, or 403 with `Retry-After` or an exhausted `X-RateLimit-Remaining`) holds
//!   every delivery to that host until the time it gives; any other 4xx is final, and
//!   its reason shows on the build's page.
//!
//! [`run_loop`] runs in dispatch (and `sparky up`): it wakes on this process's status
//! changes and every [`POLL`] otherwise, so the changes other processes make are read
//! within that.

pub mod email;
pub mod notify;
pub mod send;
pub mod status;

use std::{collections::HashMap, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::TryRecvError;
use tokio_util::sync::CancellationToken;

use crate::{
    Ctx,
    error::error_chain,
    hub::HubEvent,
    model::Event,
    project::ProjectConfig,
    store::{NewDelivery, StoreError},
    time::now_ms,
};

/// How long a claimed delivery is this process's to send: the claimed batch is sent at
/// once, so this covers one request (at most `send`'s 15 s timeout) and recording its
/// answer. A process that dies holding claims delays them by at most this.
pub const CLAIM: Duration = Duration::from_secs(30);
/// Tries before a delivery that keeps failing on the way is given up.
pub const MAX_ATTEMPTS: u32 = 15;
/// How often the events are read when nothing wakes the loop.
const POLL: Duration = Duration::from_secs(2);
/// Events read per round trip.
const EVENT_BATCH: u32 = 500;
/// After a status change wakes the outbox, how long it waits for the changes that
/// follow (a build's queued, dispatched, running and ended come within milliseconds):
/// a burst costs one pass over the events, one lookup per project and one write of the
/// cursor, not one of each per change.
const GATHER: Duration = Duration::from_millis(20);
/// Deliveries claimed per round trip.
const SEND_BATCH: u32 = 20;

/// What a delivery sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    Status(status::StatusPost),
    Webhook(notify::WebhookPost),
    Slack(notify::SlackPost),
    Email(email::EmailPost),
}

impl Payload {
    /// The delivery to record for `event`.
    fn delivery(&self, event: &Event, target: String) -> Option<NewDelivery> {
        Some(NewDelivery {
            event_id: event.id,
            build_id: event.build_id,
            target,
            payload: serde_json::to_string(self).ok()?,
        })
    }
}

impl Ctx {
    /// Reads the events past the cursor into deliveries, then sends what is due.
    /// Returns how many deliveries were derived and how many settled.
    pub async fn run_outbox(&self) -> Result<(usize, usize), StoreError> {
        let mut derived = 0;
        loop {
            let from = self.store.outbox_cursor().await?;
            let events = self.store.events_after(from, EVENT_BATCH).await?;
            let Some(last) = events.last().map(|e| e.id) else { break };
            // Each project's config is looked at once per batch; a build is read only
            // when its project announces something.
            let mut configs: HashMap<String, Option<ProjectConfig>> = HashMap::new();
            let mut deliveries: Vec<NewDelivery> = Vec::new();
            for event in &events {
                if !configs.contains_key(&event.project) {
                    let config =
                        self.projects.get(&event.project).await.ok().flatten().and_then(|p| p.config.ok());
                    configs.insert(event.project.clone(), config);
                }
                let Some(config) = configs[&event.project].as_ref() else { continue };
                let announces = config.scm.as_ref().is_some_and(|s| s.statuses.is_some())
                    || (!config.notify.is_empty() && event.to.is_terminal());
                if !announces {
                    continue;
                }
                let Some(build) = self.store.build(event.build_id).await? else { continue };
                let mut made: Vec<(String, Payload)> =
                    status::derive(self, config, &build, event).into_iter().collect();
                made.extend(notify::derive(self, config, &build, event).await);
                deliveries
                    .extend(made.into_iter().filter_map(|(target, payload)| payload.delivery(event, target)));
            }
            derived += self.store.derive_deliveries(from, last, deliveries, now_ms()).await?;
            if events.len() < EVENT_BATCH as usize {
                break;
            }
        }
        // Claiming is a write: only when something is due.
        if self.store.next_delivery_at().await?.is_none_or(|at| at > now_ms()) {
            return Ok((derived, 0));
        }
        let mut settled = 0;
        loop {
            let claimed = self.store.claim_deliveries(now_ms(), CLAIM.as_millis() as i64, SEND_BATCH).await?;
            if claimed.is_empty() {
                break;
            }
            // At once: each claim must be settled within CLAIM. A batch never holds two
            // deliveries of one build to one target, so their order is kept.
            let sends = claimed.iter().map(|delivery| async move {
                let outcome = send::send(self, delivery).await;
                self.store.settle_delivery(delivery.id, outcome, now_ms()).await
            });
            for result in futures_util::future::join_all(sends).await {
                result?;
                settled += 1;
            }
        }
        Ok((derived, settled))
    }
}

/// Runs the outbox until `shutdown`: shortly after status changes this process makes
/// ([`GATHER`]), and every [`POLL`] (or when the next retry is due, if sooner).
pub async fn run_loop(ctx: Ctx, shutdown: CancellationToken) {
    let mut changes = ctx.hub.subscribe();
    loop {
        if let Err(error) = ctx.run_outbox().await {
            tracing::warn!(error = %error_chain(&error), "the outbox could not run; trying again");
        }
        let due = match ctx.store.next_delivery_at().await {
            Ok(Some(at)) => Duration::from_millis((at - now_ms()).max(0) as u64).min(POLL),
            _ => POLL,
        };
        let wait = tokio::time::sleep(due);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                _ = shutdown.cancelled() => return,
                change = changes.recv() => match change {
                    Ok(HubEvent::StatusChanged(_)) | Err(_) => {
                        tokio::time::sleep(GATHER).await;
                        // What came meanwhile is covered by the pass about to run.
                        while !matches!(changes.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
                        break;
                    }
                    Ok(_) => {}
                },
            }
        }
    }
}
