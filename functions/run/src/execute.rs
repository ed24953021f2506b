//! One build from start to end: take it (`dispatched -> running`, a duplicate delivery
//! is a no-op), prepare a fresh working directory, start the job, supervise it, store
//! its reports and record the result ([`crate::record`]). What follows the result
//! (pruning, the poke that starts the next build) is the lifecycle's.

use std::{
    collections::BTreeMap,
    os::unix::process::ExitStatusExt,
    sync::Arc,
    time::{Duration, Instant},
};

use sparky_core::{
    Ctx,
    error::error_chain,
    model::{Build, BuildStatus},
    project::{Project, ProjectConfig},
    reports::{
        Key,
        log::{LogWriter, Masker},
    },
    runner::Assignment,
    secrets::Secret,
    time::human_duration,
};

use crate::{
    backend::{Backend, BackendError},
    checkout,
    job::{self, BuildDirs, JobEnv},
    ready,
    record::{self, Outcome},
    supervise::{Ending, Stop, Watch, supervise},
};

/// Runs build `build_id` if it is still dispatched, with Sparky's state behind
/// `state`. Returns its terminal status, or `None` when there was nothing to do (not
/// dispatched any more) or the result was not ours to record (the lease was lost).
#[tracing::instrument(skip_all, fields(build_id))]
pub async fn execute(
    ctx: &Ctx,
    state: &Arc<dyn Backend>,
    build_id: i64,
    stop_on_shutdown: bool,
) -> Result<Option<BuildStatus>, BackendError> {
    let owner = ctx.runner_name(build_id);
    let Some(assignment) = state.start(build_id, &owner).await? else {
        tracing::info!("not dispatched any more; nothing to run");
        return Ok(None);
    };
    run_assigned(ctx, state, assignment, stop_on_shutdown).await
}

/// Runs a build that is already `running` under this process's runner
/// ([`Ctx::runner_name`]) to its end, as [`execute`] does once it took it.
#[tracing::instrument(skip_all, fields(build_id = assignment.build.id))]
pub async fn run_assigned(
    ctx: &Ctx,
    state: &Arc<dyn Backend>,
    assignment: Assignment,
    stop_on_shutdown: bool,
) -> Result<Option<BuildStatus>, BackendError> {
    let _running = sparky_core::memory::BuildRunning::begin();
    let Assignment { build, token, project, secrets } = assignment;
    let owner = ctx.runner_name(build.id);
    tracing::info!(project = %build.project, attempt = build.attempt, "build started");

    if build.attempt > 1 {
        // A new attempt: the last one's log chunks sit at the same offsets as this
        // one's, so they would mix; its artifacts and report are stale too.
        if let Err(error) = ctx.reports.delete_prefix(&Key::build_prefix(&build.project, build.id)).await {
            tracing::warn!(error = %error_chain(&error), "could not delete the last attempt's reports");
        }
    }
    let mut log = LogWriter::new(ctx.reports.clone(), &build.project, build.id, Some(ctx.hub.clone()));
    let outcome = match &project {
        Some(project) => match &project.config {
            Ok(config) => {
                let job = JobRun { build: &build, project, config, owner: &owner, token: &token, secrets };
                let outcome = run_job(ctx, state.as_ref(), job, stop_on_shutdown, &mut log).await;
                if outcome.as_ref().is_some_and(|o| o.status == BuildStatus::Succeeded) {
                    match state.downstream(&build).await {
                        Ok(notes) => {
                            for note in notes {
                                log.append(format!("[sparky] {note}\n").as_bytes());
                            }
                        }
                        Err(error) => log.append(
                            format!(
                                "[sparky] downstream projects could not be queued: {}\n",
                                error_chain(&error)
                            )
                            .as_bytes(),
                        ),
                    }
                }
                outcome
            }
            Err(e) => Some(Outcome::failed(format!("the project's config is broken: {e}"))),
        },
        None => Some(Outcome::failed(format!("project {} no longer exists", build.project))),
    };
    let Some(outcome) = outcome else {
        record::rest_of_log(ctx, log).await;
        tracing::warn!("the lease was lost while the build ran; the sweep recorded it");
        return Ok(None);
    };
    let status = outcome.status;
    let exit_code = outcome.exit_code;
    if !record::record(ctx, state, &build, &owner, outcome, log).await? {
        tracing::warn!("the build was taken over before it finished; result not recorded");
        return Ok(None);
    }
    tracing::info!(%status, ?exit_code, "build finished");
    Ok(Some(status))
}

/// What one run of a job needs to know.
struct JobRun<'a> {
    build: &'a Build,
    project: &'a Project,
    config: &'a ProjectConfig,
    /// Whose lease the build is under.
    owner: &'a str,
    /// `SPARKY_TOKEN`, valid while the build runs.
    token: &'a Secret,
    /// The values of the secrets granted to the project, or why it can't have them.
    secrets: Result<BTreeMap<String, Secret>, String>,
}

/// Checks out the build's commit if it has one, then starts and supervises the job.
/// `None` when the lease was lost.
async fn run_job(
    ctx: &Ctx,
    state: &dyn Backend,
    job: JobRun<'_>,
    stop_on_shutdown: bool,
    log: &mut LogWriter,
) -> Option<Outcome> {
    let JobRun { build, project, config, owner, token, secrets } = job;
    let started = Instant::now();
    let dirs = BuildDirs::new(&ctx.config.build_work_dir(build.id));
    let work = ctx.config.work_dir();
    let ready_slots = ctx.config.max_running.clamp(1, ready::MOST);
    if let Err(e) = dirs.prepare(&work, ready_slots).await {
        return Some(Outcome::failed(format!("could not prepare the working directory: {e}")));
    }
    let secrets = match secrets {
        Ok(secrets) => secrets,
        Err(problem) => return Some(Outcome::failed(problem)),
    };
    // Before the job prints anything: no value of theirs is ever stored.
    log.mask(Masker::new(secrets.values().map(Secret::expose)));
    let mut env = job::job_env(build, config, &dirs, &ctx.config, &secrets);
    env.vars.insert("SPARKY_TOKEN".into(), token.expose().to_string());
    let retries = config.retries;
    let watch = |timeout| Watch { ctx, state, build_id: build.id, owner, timeout, retries, stop_on_shutdown };

    if let Some(mut scm) = checkout::target(build, config) {
        let url = scm.url.clone().unwrap_or_default();
        for (name, value) in [("SCM_URL", &scm.url), ("SCM_BRANCH", &scm.branch), ("SCM_SHA", &scm.sha)] {
            if let Some(value) = value {
                env.vars.insert(name.into(), value.clone());
            }
        }
        let mut checkout_env = JobEnv { vars: env.vars.clone() };
        if let Some(pull) = &build.pull_request {
            checkout_env.vars.insert("SCM_FETCH_REF".into(), pull.head_ref.clone());
        }
        let step =
            match job::spawn_script(&dirs.checkout_script, checkout::SCRIPT, &dirs, &checkout_env).await {
                Ok(step) => step,
                Err(e) => return Some(Outcome::failed(format!("could not start the checkout: {e}"))),
            };
        let checked = outcome(supervise(watch(config.timeout), step, log).await, config.timeout)?;
        match checked.status {
            BuildStatus::Succeeded => {}
            BuildStatus::Failed => {
                return Some(Outcome { error: Some(format!("the checkout of {url} failed")), ..checked });
            }
            _ => return Some(checked),
        }
        if let Some(sha) = checkout::head_commit(&dirs.workspace).await {
            env.vars.insert("SCM_SHA".into(), sha.clone());
            scm.sha = Some(sha);
            if let Err(error) = state.record_commit(build.id, scm).await {
                tracing::warn!(error = %error_chain(&error), "could not record the commit");
            }
        }
    }

    let job = match job::spawn(project, config, &dirs, &env).await {
        Ok(job) => job,
        Err(e) => return Some(Outcome::failed(format!("could not start the job: {e}"))),
    };
    // The job runs: the next build's folders are made meanwhile.
    ready::refill(work, ready_slots);
    let remaining = config.timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
    outcome(supervise(watch(remaining), job, log).await, config.timeout)
}

/// The result of a supervised step; `limit` is the project's timeout, for the message.
fn outcome(ending: Ending, limit: Duration) -> Option<Outcome> {
    let exit_code = ending.status.map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)));
    let (status, error) = match ending.stop {
        Some(Stop::LeaseLost | Stop::HandedBack) => return None,
        Some(Stop::TimedOut) => (
            BuildStatus::TimedOut,
            Some(format!("timed out after {}; the job's processes were killed", human(limit))),
        ),
        Some(Stop::Canceled) => {
            (BuildStatus::Canceled, Some("canceled; the job's processes were killed".into()))
        }
        Some(Stop::Shutdown) => {
            (BuildStatus::Canceled, Some("canceled: Sparky shut down while the build ran".into()))
        }
        None if exit_code == Some(0) => (BuildStatus::Succeeded, None),
        None => (BuildStatus::Failed, None),
    };
    Some(Outcome { status, exit_code, error })
}

fn human(d: Duration) -> String {
    human_duration(d.as_millis() as i64)
}
