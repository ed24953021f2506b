//! The build lifecycle: the one place where a build's status changes (queued →
//! dispatched → running → terminal; cancel; back to the queue; lost), and where what
//! must follow each change is done. Nothing else writes a status.
//!
//! Each change is written together with its event, in one transaction
//! ([`crate::store`]'s transitions); then, here:
//! - every change: this process's metrics count it ([`crate::metrics`]: queued,
//!   started with its wait in the queue, ended with how long it ran), and the hub
//!   hears of it, so live pages in this process update at once;
//! - a change that adds work or frees a slot (queued, back to the queue, ended):
//!   dispatch is poked, so the next build starts without waiting for a sweep;
//! - a change to a terminal status: `report.json` is stored (unless the runner stored
//!   it just before), the project is pruned to its `keep_builds`, and the event is
//!   marked followed. A process that dies before that leaves the event pending, and
//!   [`Ctx::follow_up_pending`] (dispatch's sweep passes) does it again: both steps
//!   are idempotent, so a follow-up done twice does no harm.
//!
//! - [`follow`]: what follows a change, and the follow-ups a dead process left.
//! - [`downstream`]: queueing `downstream:` projects after a successful build.
//!
//! A runner's writes retry while the database is busy ([`Ctx::start_build`],
//! [`Ctx::finish_build`], [`Ctx::hand_back`]): a busy database delays a build's
//! result but never turns it into `lost`.

mod downstream;
mod follow;
mod pulls;

use std::{
    collections::HashMap,
    future::Future,
    hash::{BuildHasher, RandomState},
    time::Duration,
};

use tokio::time::Instant;

use crate::{
    Ctx,
    hub::HubEvent,
    model::{Build, Event, NewBuild, Reason},
    secrets::{Secret, new_job_token, token_hash},
    store::{CancelOutcome, Claim, Ending, Inserted, Limits, Renewal, Start, StoreError},
    time::now_ms,
};

/// A build a runner took, and its job token (`SPARKY_TOKEN`), valid while it runs.
#[derive(Debug)]
pub struct Started {
    pub build: Build,
    pub token: Secret,
}

impl Ctx {
    /// Queues a build (committed before this returns), tells whoever watches, and
    /// pokes dispatch so that it starts without waiting for a sweep. With an
    /// idempotency key used before, nothing changes and the earlier build comes back.
    pub async fn queue_build(&self, new: NewBuild) -> Result<Inserted, StoreError> {
        let inserted = self.store.queue_build(new, now_ms()).await?;
        if inserted.created {
            let build = &inserted.build;
            tracing::info!(build_id = build.id, project = %build.project, trigger = %build.trigger, "build queued");
            self.metrics.queued(&build.project, build.trigger);
            self.hub.publish(HubEvent::StatusChanged(build.id));
            self.dispatch.poke();
        }
        Ok(inserted)
    }

    /// Claims the builds that may start within `limits` for this process's lease.
    pub async fn claim_builds(&self, limits: Limits) -> Result<Vec<Claim>, StoreError> {
        let lease = self.config.lease.as_millis() as i64;
        let (claims, events) =
            self.store.claim(limits, self.config.instance.clone(), now_ms(), lease).await?;
        self.follow(&events, false).await;
        Ok(claims)
    }

    /// Claims what may start within `limits` and starts it at once, in one commit, for
    /// runners of this process (`sparky up`, where dispatch and run share a process):
    /// each build's runner is [`Ctx::runner_name`]. The builds now running with their
    /// job tokens; one whose cancel was asked before it started ends here instead.
    pub async fn claim_and_start(&self, limits: Limits) -> Result<Vec<Started>, StoreError> {
        let lease = self.config.lease.as_millis() as i64;
        let instance = self.config.instance.clone();
        let runner = move |build_id| runner_name(&instance, build_id);
        let (starts, events) = self
            .store
            .claim_and_start(limits, self.config.instance.clone(), runner, job_token, now_ms(), lease)
            .await?;
        self.follow(&events, false).await;
        Ok(starts
            .into_iter()
            .filter_map(|(start, token)| match start {
                Start::Running(build, _) => Some(Started { build: *build, token }),
                Start::Canceled(_) | Start::NotDispatched => None,
            })
            .collect())
    }

    /// The name under which this process's runner holds build `build_id`'s lease.
    pub fn runner_name(&self, build_id: i64) -> String {
        runner_name(&self.config.instance, build_id)
    }

    /// Puts a dispatched build that never reached a runner back at the front of its
    /// project's queue, without using a retry. `false` if it was not dispatched.
    pub async fn requeue_dispatched(&self, build_id: i64, reason: Reason) -> Result<bool, StoreError> {
        let event = self.store.requeue_dispatched(build_id, reason, now_ms()).await?;
        if let Some(event) = &event {
            tracing::warn!(build_id, reason = %event.reason, "build goes back to the queue");
            self.follow(std::slice::from_ref(event), false).await;
        }
        Ok(event.is_some())
    }

    /// Takes a dispatched build for the runner `owner`: `Some` when it is now running
    /// under `owner`'s lease, with the job token that is valid while it runs; `None`
    /// when there is nothing to run (a duplicate delivery, back in the queue, or
    /// canceled meanwhile — then it ends here).
    #[tracing::instrument(skip(self, owner))]
    pub async fn start_build(&self, build_id: i64, owner: &str) -> Result<Option<Started>, StoreError> {
        let lease = self.config.lease.as_millis() as i64;
        let (token, hash) = job_token()?;
        let started = self
            .persist("start", build_id, || {
                self.store.start(build_id, owner.into(), hash.clone(), now_ms(), lease)
            })
            .await?;
        match started {
            Start::Running(build, event) => {
                self.follow(&[event], false).await;
                Ok(Some(Started { build: *build, token }))
            }
            Start::Canceled(event) => {
                tracing::info!("canceled before it started");
                self.follow(&[event], false).await;
                Ok(None)
            }
            Start::NotDispatched => Ok(None),
        }
    }

    /// Extends a running build's lease (a busy database is the caller's to retry on
    /// its next renewal: the lease outlasts several).
    pub async fn renew_lease(&self, build_id: i64, owner: &str) -> Result<Renewal, StoreError> {
        let lease = self.config.lease.as_millis() as i64;
        self.store.renew(build_id, owner.into(), now_ms(), lease).await
    }

    /// Records how a running build ended; its runner stored `report.json` just before.
    /// `false` when the build was no longer `owner`'s (the sweep took it): the result
    /// is not recorded, and the report is made to say what the build's row says.
    #[tracing::instrument(skip(self, owner, ending), fields(status = %ending.status))]
    pub async fn finish_build(&self, build_id: i64, owner: &str, ending: Ending) -> Result<bool, StoreError> {
        let event = self
            .persist("finish", build_id, || self.store.finish(build_id, owner.into(), ending.clone()))
            .await?;
        match event {
            Some(event) => {
                self.follow(&[event], true).await;
                Ok(true)
            }
            None => {
                if let Err(problem) = follow::ensure_report(self, build_id).await {
                    tracing::warn!(build_id, %problem, "could not correct the report of a build taken over");
                }
                Ok(false)
            }
        }
    }

    /// A runner going away hands its running build back: to the queue while the
    /// project's `retries` allow, else `lost`. `false` if it was not `owner`'s.
    pub async fn hand_back(&self, build_id: i64, owner: &str, retries: u32) -> Result<bool, StoreError> {
        let event = self
            .persist("hand back", build_id, || {
                self.store.hand_back(build_id, owner.into(), retries, now_ms())
            })
            .await?;
        if let Some(event) = &event {
            tracing::warn!(build_id, to = %event.to, "build handed back: its runner is shutting down");
            self.follow(std::slice::from_ref(event), false).await;
        }
        Ok(event.is_some())
    }

    /// Asks for a build to stop: a queued one ends `canceled` now; a dispatched or
    /// running one is flagged, and its runner stops it.
    pub async fn cancel_build(&self, build_id: i64) -> Result<CancelOutcome, StoreError> {
        let outcome = self.store.request_cancel(build_id, now_ms()).await?;
        match &outcome {
            CancelOutcome::Canceled(event) => self.follow(std::slice::from_ref(event), false).await,
            CancelOutcome::Requested => self.hub.publish(HubEvent::CancelRequested(build_id)),
            CancelOutcome::AlreadyFinished(_) | CancelOutcome::NotFound => {}
        }
        Ok(outcome)
    }

    /// Ends queued builds that can never run (`reason`: their project is gone or
    /// disabled) as `canceled`; returns those it ended.
    pub async fn drop_queued(&self, ids: Vec<i64>, reason: Reason) -> Result<Vec<i64>, StoreError> {
        let events = self.store.end_queued(ids, reason, now_ms()).await?;
        self.follow(&events, false).await;
        Ok(events.iter().map(|e| e.build_id).collect())
    }

    /// Ends the attempts whose lease ran out: a build that never started goes back to
    /// the front of the queue, one that started goes back while `retries` (per
    /// project) allow, else ends `lost`.
    pub async fn sweep_leases(&self, retries: HashMap<String, u32>) -> Result<Vec<Event>, StoreError> {
        let events = self.store.sweep(retries, now_ms()).await?;
        for event in &events {
            tracing::warn!(build_id = event.build_id, project = %event.project, reason = %event.reason,
                to = %event.to, "lease ran out");
        }
        self.follow(&events, false).await;
        Ok(events)
    }

    /// Runs a runner's store write, again and again while the database is busy, for
    /// as long as twice the lease (at least a minute): the lease is renewed meanwhile,
    /// and the sweep needs the same lock to take the build away.
    async fn persist<T, F, Fut>(
        &self,
        what: &'static str,
        build_id: i64,
        mut write: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let deadline = Instant::now() + (self.config.lease * 2).max(Duration::from_secs(60));
        let mut delay = Duration::from_millis(20);
        loop {
            match write().await {
                Err(error) if error.is_busy() && Instant::now() + delay < deadline => {
                    tracing::warn!(build_id, what, retry_in = ?delay, "database busy; retrying");
                    self.metrics.busy_retry(what);
                    tokio::time::sleep(delay + jitter(delay)).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }
}

/// A new job token, and the hash of it that the store keeps.
fn job_token() -> Result<(Secret, String), StoreError> {
    let token =
        new_job_token().map_err(|e| StoreError::Corrupt(format!("no random bytes for a job token: {e}")))?;
    let hash = token_hash(token.expose());
    Ok((token, hash))
}

fn runner_name(instance: &str, build_id: i64) -> String {
    format!("{instance}/{build_id}")
}

/// Up to half of `delay`, so that writers who met on a lock don't meet again.
fn jitter(delay: Duration) -> Duration {
    let random = RandomState::new().hash_one(now_ms());
    let half = (delay.as_micros() as u64 / 2).max(1);
    Duration::from_micros(random % half)
}
