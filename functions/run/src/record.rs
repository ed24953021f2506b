//! Recording a build's end: its artifacts, the rest of its log and `report.json` are
//! stored — each retried with backoff until `SPARKY_REPORTS_TIMEOUT` after the job
//! ended, while the build's lease is kept — and then its terminal status is set. What
//! report storage still refused by then is recorded with the build (`report_error`),
//! so its page says the report is incomplete; the build's result stands either way.

use std::sync::Arc;

use sparky_core::{
    Ctx,
    error::error_chain,
    model::{Build, BuildStatus},
    reports::{
        log::{LogEnd, LogWriter},
        report::BuildReport,
    },
    store::Ending,
    time::now_ms,
};
use tokio::{task::JoinHandle, time::Instant};

use crate::{
    artifacts,
    backend::{Backend, BackendError},
    job::BuildDirs,
};

/// How a build's result is recorded.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: BuildStatus,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
}

impl Outcome {
    pub(crate) fn failed(error: String) -> Self {
        Outcome { status: BuildStatus::Failed, exit_code: None, error: Some(error) }
    }
}

/// Renews a build's lease until dropped, while its reports are being stored.
struct LeaseKeeper(JoinHandle<()>);

impl LeaseKeeper {
    fn start(ctx: &Ctx, state: Arc<dyn Backend>, build_id: i64, owner: &str) -> Self {
        let lease = ctx.config.lease;
        let owner = owner.to_string();
        LeaseKeeper(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                if let Err(error) = state.renew(build_id, &owner).await {
                    tracing::warn!(build_id, error = %error_chain(&error), "lease renewal failed");
                }
            }
        }))
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Stores what is left of the log of a build whose lease was lost (the sweep records
/// its end); returns how it went.
pub async fn rest_of_log(ctx: &Ctx, log: LogWriter) -> LogEnd {
    log.finish(Instant::now() + ctx.config.reports_timeout).await
}

/// Stores `build`'s reports and records `outcome`. `false`: the build was no longer
/// ours to record (taken over).
pub async fn record(
    ctx: &Ctx,
    state: &Arc<dyn Backend>,
    build: &Build,
    owner: &str,
    outcome: Outcome,
    mut log: LogWriter,
) -> Result<bool, BackendError> {
    let deadline = Instant::now() + ctx.config.reports_timeout;
    let _lease = LeaseKeeper::start(ctx, state.clone(), build.id, owner);
    if let Some(error) = &outcome.error {
        log.append(format!("\n[sparky] {error}\n").as_bytes());
    }
    let dirs = BuildDirs::new(&ctx.config.build_work_dir(build.id));
    let stored = artifacts::store(ctx, build, &dirs.artifacts, &mut log, deadline).await;
    let log_end = log.finish(deadline).await;

    let mut problems = Vec::new();
    problems.extend(log_end.problem());
    if !stored.failed.is_empty() {
        problems.push(format!("artifacts could not be stored: {}", stored.failed.join(", ")));
    }
    let finished_at = now_ms();
    // The row as it is now (a checkout may have recorded the commit), as it will end.
    let (now, events) = state.current(build.id).await?;
    let mut ended = now.unwrap_or_else(|| build.clone());
    ended.status = outcome.status;
    ended.exit_code = outcome.exit_code;
    ended.error = outcome.error.clone();
    ended.finished_at = Some(finished_at);
    ended.log_size = Some(log_end.size);
    let report = BuildReport::new(
        &ended,
        &events,
        log_end.size,
        log_end.complete(),
        stored.artifacts,
        problems.clone(),
    );
    if let Err(problem) = report.store(ctx.reports.as_ref(), deadline).await {
        problems.push(problem);
    }
    let report_error = (!problems.is_empty()).then(|| problems.join("; "));
    if let Some(problem) = &report_error {
        tracing::error!(build_id = build.id, %problem, "the build's report is incomplete");
    }
    let ending = Ending {
        status: outcome.status,
        exit_code: outcome.exit_code,
        error: outcome.error,
        log_size: log_end.size,
        report_error,
        finished_at,
    };
    state.finish(build.id, owner, ending).await
}
