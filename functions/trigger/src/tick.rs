//! The minute tick: `POST /events/cron` (a Knative PingSource's CloudEvent, binary or
//! structured), or `sparky up`'s own ticker. Each tick queues the projects whose
//! crontab matches the tick's minute — exactly once per project and minute, however
//! often and by however many processes the tick is delivered, because each cron build
//! carries the idempotency key `cron:<project>:<minute>` — then reads the `.triggers/`
//! inboxes and starts the SCM polls that are due. Minutes without a tick are not
//! caught up on, and a delivered tick whose time is further from the clock than
//! `SPARKY_TICK_WINDOW` queues nothing: a tick redelivered long after its minute is a
//! missed minute, and nobody can queue cron builds for a minute of their choosing.

use std::{sync::Arc, time::Duration};

use axum::{Json, body::Body, extract::State};
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde::Serialize;
use sparky_core::{
    Ctx,
    api::{ApiError, read_body},
    cron::truncate_to_minute,
    error::error_chain,
    events::{CloudEvent, PING},
    model::{NewBuild, TriggerKind},
    project::params,
    store::StoreError,
};
use tokio::sync::Semaphore;

use crate::{files, poll};

/// What a tick needs: the shared state and this process's slots for `git ls-remote`.
#[derive(Clone)]
pub struct Ticker {
    pub ctx: Ctx,
    pub poll_slots: Arc<Semaphore>,
}

impl Ticker {
    /// At most this many `git ls-remote` run at once in one process.
    pub const POLLS_AT_ONCE: usize = 8;

    pub fn new(ctx: Ctx) -> Self {
        Ticker { ctx, poll_slots: Arc::new(Semaphore::new(Self::POLLS_AT_ONCE)) }
    }
}

/// A build a tick asked for.
#[derive(Debug, Serialize)]
pub struct Queued {
    pub project: String,
    pub build_id: i64,
    /// `false` when an earlier delivery of the same tick already queued it.
    pub new: bool,
}

/// What a tick did, as `POST /events/cron` answers it.
#[derive(Debug, Default, Serialize)]
pub struct TickReport {
    /// The minute the tick stands for (RFC 3339, UTC).
    pub minute: String,
    pub cron: Vec<Queued>,
    pub files: Vec<files::FileOutcome>,
    /// Projects whose repository is being polled in the background.
    pub polling: Vec<String>,
}

/// `POST /events/cron`
#[tracing::instrument(skip_all)]
pub async fn on_cron(
    State(ticker): State<Ticker>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TickReport>, ApiError> {
    let body = read_body(&headers, body).await?;
    let event = CloudEvent::parse(&headers, &body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if event.kind != PING {
        return Err(ApiError::BadRequest(format!("expected a {PING} event, got {}", event.kind)));
    }
    let now = Utc::now();
    let at = match &event.time {
        Some(time) => DateTime::parse_from_rfc3339(time)
            .map_err(|e| ApiError::BadRequest(format!("the event's time {time:?} is not RFC 3339: {e}")))?
            .with_timezone(&Utc),
        None => now,
    };
    if let Some(window) = ticker.ctx.config.tick_window {
        let off = (at - now).abs().to_std().unwrap_or_default();
        if off > window {
            return Err(ApiError::Unprocessable(format!(
                "the tick's time {} is {} from this server's clock, more than SPARKY_TICK_WINDOW \
                 ({}): nothing queued (missed minutes are not caught up on)",
                at.to_rfc3339(),
                humantime::format_duration(Duration::from_secs(off.as_secs())),
                humantime::format_duration(window),
            )));
        }
    }
    Ok(Json(tick(&ticker, at).await?))
}

/// Why a tick failed; the next one tries again.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error("could not read the projects")]
    Projects(#[from] std::io::Error),
    #[error("could not queue a cron build")]
    Store(#[from] StoreError),
}

impl From<TickError> for ApiError {
    fn from(error: TickError) -> Self {
        match error {
            TickError::Store(StoreError::Busy) => ApiError::Busy,
            other => ApiError::internal(other),
        }
    }
}

/// Runs one tick for the minute `at` falls in.
pub async fn tick(ticker: &Ticker, at: DateTime<Utc>) -> Result<TickReport, TickError> {
    let ctx = &ticker.ctx;
    let minute = truncate_to_minute(at);
    let stamp = minute.format("%Y-%m-%dT%H:%MZ").to_string();
    let projects = ctx.projects.list().await?;
    let mut report = TickReport { minute: minute.to_rfc3339(), ..TickReport::default() };
    for project in &projects {
        let Ok(config) = &project.config else { continue };
        let Some(crontab) = &config.crontab else { continue };
        if config.disabled || !crontab.fires_at(minute, config.timezone) {
            continue;
        }
        let new = NewBuild {
            project: project.name.clone(),
            trigger: Some(TriggerKind::Cron),
            params: params::defaults(&config.vars),
            description: Some(format!("cron {crontab} at {stamp}")),
            triggered_by: Some(format!("cron {crontab}")),
            idempotency_key: Some(format!("cron:{}:{stamp}", project.name)),
            ..NewBuild::default()
        };
        let inserted = ctx.queue_build(new).await?;
        report.cron.push(Queued {
            project: project.name.clone(),
            build_id: inserted.build.id,
            new: inserted.created,
        });
    }
    report.files = files::scan(ctx, &projects).await;
    report.polling = poll::start_due(ctx, &ticker.poll_slots, &projects);
    Ok(report)
}

/// `sparky up`'s ticker: a tick at the start of every minute until shutdown.
pub async fn run_minute_ticker(ticker: Ticker) {
    loop {
        let now = Utc::now();
        let next = truncate_to_minute(now) + chrono::Duration::minutes(1);
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = ticker.ctx.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match tick(&ticker, next).await {
            Ok(report) => tracing::debug!(?report, "tick"),
            Err(error) => tracing::error!(error = %error_chain(&error), "tick failed"),
        }
    }
}

/// `sparky up`'s inbox reader: `.triggers/` files are picked up within a second.
/// (A scan, not file-system notifications: on a volume shared by several hosts,
/// files written on another host raise no events here, and reading a few small
/// folders twice a second costs next to nothing.)
pub async fn run_inbox_scanner(ctx: Ctx) {
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
        match ctx.projects.list().await {
            Ok(projects) => {
                files::scan(&ctx, &projects).await;
            }
            Err(error) => tracing::warn!(error = %error_chain(&error), "could not list projects"),
        }
    }
}
