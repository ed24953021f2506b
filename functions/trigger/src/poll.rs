//! SCM polling (Sparky's `scm:` trigger): on each tick, every project with
//! `scm.poll: true` asks its repository for its heads with `git ls-remote`, in the
//! background and under a time limit, so that a slow or unreachable repository delays
//! neither the other projects nor the tick's answer. A head on a branch matching
//! `scm.branch` that differs from the one the last poll saw — a new commit, a branch
//! seen for the first time or again after it was deleted, a force-push back to an
//! older commit — queues one build with trigger `scm`. A failing repository is retried
//! with backoff; its last error is kept for the project page.

use std::{process::Stdio, sync::Arc, time::Duration};

use sparky_core::{
    Ctx,
    error::error_chain,
    model::{NewBuild, Params, ScmRef, TriggerKind},
    project::{Project, ScmConfig, params},
    repo::glob_match,
    time::now_ms,
};
use tokio::{process::Command, sync::Semaphore};

/// The first retry after a failure waits this long; each further failure doubles it.
const BACKOFF_BASE: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

/// Starts a background poll for each project that polls, each waiting for one of
/// `slots`; returns their names.
pub fn start_due(ctx: &Ctx, slots: &Arc<Semaphore>, projects: &[Project]) -> Vec<String> {
    let mut started = Vec::new();
    for project in projects {
        let Ok(config) = &project.config else { continue };
        let Some(scm) = config.scm.clone().filter(|scm| scm.poll) else { continue };
        if config.disabled {
            continue;
        }
        let (ctx, slots, name) = (ctx.clone(), slots.clone(), project.name.clone());
        let defaults = params::defaults(&config.vars);
        started.push(name.clone());
        tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else { return };
            poll(&ctx, &name, &scm, &defaults).await;
        });
    }
    started
}

/// Polls one project if it is due and no other process is polling it.
#[tracing::instrument(skip(ctx, scm, defaults))]
/// `defaults`: the project's parameters at their defaults, which its builds get.
pub async fn poll(ctx: &Ctx, project: &str, scm: &ScmConfig, defaults: &Params) {
    let limit = ctx.config.scm_timeout;
    let hold = (limit + Duration::from_secs(10)).as_millis() as i64;
    let claim = match ctx.store.claim_poll(project, &scm.url, now_ms(), hold).await {
        Ok(Some(claim)) => claim,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "could not claim the poll");
            return;
        }
    };
    let heads = match tokio::time::timeout(limit, ls_remote(&scm.url, scm.tags)).await {
        Ok(Ok(heads)) => heads,
        Ok(Err(problem)) => return failed(ctx, project, problem, claim.failures).await,
        Err(_) => {
            return failed(ctx, project, format!("git ls-remote took longer than {limit:?}"), claim.failures)
                .await;
        }
    };
    let branch_glob = scm.branch.as_deref().unwrap_or("*");
    let mut seen = Vec::new();
    for (ref_name, sha) in heads {
        let wanted = match ref_name.strip_prefix("refs/heads/") {
            Some(branch) => glob_match(branch_glob, branch).then(|| branch.to_string()),
            None => ref_name.strip_prefix("refs/tags/").filter(|_| scm.tags).map(str::to_string),
        };
        let Some(branch) = wanted else { continue };
        if claim.heads.get(&ref_name) != Some(&sha) {
            let new = NewBuild {
                project: project.into(),
                trigger: Some(TriggerKind::Scm),
                params: defaults.clone(),
                description: Some(format!("new commit {} on {branch}", &sha[..sha.len().min(12)])),
                scm: ScmRef {
                    url: Some(scm.url.clone()),
                    branch: Some(branch.clone()),
                    sha: Some(sha.clone()),
                },
                // Once per poll: a retried poll doesn't queue it twice, a later one may.
                idempotency_key: Some(format!("scm:{project}:{}:{ref_name}:{sha}", claim.number)),
                ..NewBuild::default()
            };
            if let Err(error) = ctx.queue_build(new).await {
                // Not recorded as seen, so the next poll finds it new and tries again.
                tracing::warn!(error = %error_chain(&error), branch, "could not queue a build for a new commit");
                continue;
            }
        }
        seen.push((ref_name, sha));
    }
    if let Err(error) = ctx.store.poll_succeeded(project, seen, now_ms()).await {
        tracing::warn!(error = %error_chain(&error), "could not record the poll");
    }
}

async fn failed(ctx: &Ctx, project: &str, problem: String, failures: u32) {
    let backoff = BACKOFF_BASE.saturating_mul(1 << failures.min(10)).min(BACKOFF_MAX);
    tracing::warn!(problem, retry_in = ?backoff, "polling the repository failed");
    let now = now_ms();
    if let Err(error) = ctx.store.poll_failed(project, problem, now, now + backoff.as_millis() as i64).await {
        tracing::warn!(error = %error_chain(&error), "could not record the failed poll");
    }
}

/// `git ls-remote --heads [--tags] URL` → `(ref, sha)` pairs. Git never asks for
/// credentials on a terminal here, and its whole process group goes if the time
/// limit drops this future.
async fn ls_remote(url: &str, tags: bool) -> Result<Vec<(String, String)>, String> {
    let mut command = Command::new("git");
    command.arg("ls-remote").arg("--heads");
    if tags {
        command.arg("--tags");
    }
    command
        .arg("--")
        .arg(url)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=10")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = command.output().await.map_err(|e| format!("could not run git: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message: String =
            stderr.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(500).collect();
        return Err(format!("git ls-remote failed ({}): {message}", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (sha, name) = line.split_once('\t')?;
            // Annotated tags list their commit as `name^{}` too; the tag itself is enough.
            (!name.ends_with("^{}")).then(|| (name.to_string(), sha.to_string()))
        })
        .collect())
}

#[cfg(test)]
mod tests;
