//! What can start a project's builds, as its page and `GET /api/v1/projects/{p}` show
//! it: the next cron times in the project's time zone, the webhook URLs and which
//! secret they need, the SCM polling state (heads seen, last error), and the newest
//! build of each trigger kind.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Serialize;
use sparky_core::{Ctx, api::ApiError, api::BuildJson, project::ProjectConfig, time::rfc3339};

/// How many upcoming cron times are shown.
const NEXT_RUNS: usize = 3;

#[derive(Debug, Serialize)]
pub struct Triggers {
    pub cron: Option<CronView>,
    pub webhooks: Option<WebhookView>,
    pub polling: Option<PollingView>,
    /// The newest build of each trigger kind (`api`, `cron`, `webhook`, ...).
    pub last_by_trigger: BTreeMap<String, BuildJson>,
}

#[derive(Debug, Serialize)]
pub struct CronView {
    pub crontab: String,
    pub timezone: String,
    /// RFC 3339 with the zone's offset.
    pub next: Vec<String>,
    /// The same times as people read them, e.g. `2026-11-25 09:00 CET`.
    pub next_text: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct WebhookView {
    /// Host format → URL to give that host.
    pub urls: BTreeMap<&'static str, String>,
    /// The variable holding the secret the host must sign with.
    pub secret_variable: String,
    pub secret_set: bool,
    pub branch: String,
    pub tags: bool,
}

#[derive(Debug, Serialize)]
pub struct PollingView {
    pub url: String,
    pub branch: String,
    pub checked_at: Option<String>,
    pub ok_at: Option<String>,
    pub failures: u32,
    pub last_error: Option<String>,
    /// When it is polled again after failures (RFC 3339), if later than the next tick.
    pub retry_at: Option<String>,
    pub heads: Vec<HeadView>,
}

#[derive(Debug, Serialize)]
pub struct HeadView {
    pub reference: String,
    pub sha: String,
    pub seen_at: String,
}

/// Reads a usable project's triggers.
pub async fn triggers(ctx: &Ctx, name: &str, config: &ProjectConfig) -> Result<Triggers, ApiError> {
    let now = Utc::now();
    let cron = config.crontab.as_ref().map(|crontab| {
        let runs = crontab.next_runs(now, config.timezone, NEXT_RUNS);
        CronView {
            crontab: crontab.to_string(),
            timezone: config.timezone.name().to_string(),
            next: runs.iter().map(|t| t.to_rfc3339()).collect(),
            next_text: runs.iter().map(|t| t.format("%Y-%m-%d %H:%M %Z").to_string()).collect(),
        }
    });
    let base = ctx.config.public_url.clone().unwrap_or_default();
    let webhooks = config.scm.as_ref().map(|scm| {
        let secret_variable = scm.secret_env.clone().unwrap_or_else(|| "SPARKY_WEBHOOK_SECRET".into());
        let secret_set = match &scm.secret_env {
            Some(variable) => ctx.config.project_secrets.contains_key(variable),
            None => ctx.config.webhook_secret.is_some(),
        };
        WebhookView {
            urls: [("github", "github"), ("gitlab", "gitlab"), ("gitea / forgejo", "gitea")]
                .into_iter()
                .map(|(format, path)| (format, format!("{base}/hooks/{path}")))
                .collect(),
            secret_variable,
            secret_set,
            branch: scm.branch.clone().unwrap_or_else(|| "*".into()),
            tags: scm.tags,
        }
    });
    let polling = match config.scm.as_ref().filter(|scm| scm.poll) {
        None => None,
        Some(scm) => {
            let state = ctx.store.poll_state(name).await?.filter(|state| state.url == scm.url);
            Some(PollingView {
                url: scm.url.clone(),
                branch: scm.branch.clone().unwrap_or_else(|| "*".into()),
                checked_at: state.as_ref().and_then(|s| s.checked_at).map(rfc3339),
                ok_at: state.as_ref().and_then(|s| s.ok_at).map(rfc3339),
                failures: state.as_ref().map_or(0, |s| s.failures),
                last_error: state.as_ref().and_then(|s| s.last_error.clone()),
                retry_at: state
                    .as_ref()
                    .filter(|s| s.due_at > now.timestamp_millis())
                    .map(|s| rfc3339(s.due_at)),
                heads: state
                    .map(|s| s.heads)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(reference, sha, seen)| HeadView { reference, sha, seen_at: rfc3339(seen) })
                    .collect(),
            })
        }
    };
    let last_by_trigger = ctx
        .store
        .last_builds_by_trigger(name)
        .await?
        .iter()
        .map(|build| (build.trigger.as_str().to_string(), BuildJson::from(build)))
        .collect();
    Ok(Triggers { cron, webhooks, polling, last_by_trigger })
}
