//! `report.json`: one build's summary, stored beside its log and artifacts
//! (`projects/{project}/builds/{id}/report.json`) when it ends, for other tools to
//! read without Sparky's database. The README documents its fields; `version` goes
//! up when one changes meaning or goes away (new fields may appear at any time).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Key, ReportStore, log::StoredLog, retry};
use crate::{
    Ctx,
    api::error_chain,
    model::{Build, BuildStatus, Params},
    time::rfc3339,
};

/// The format's version.
pub const VERSION: u32 = 1;

/// A stored artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactEntry {
    /// Its path below `$SPARKY_ARTIFACTS`, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Its object key in report storage.
    pub key: String,
    /// Where Sparky serves it, relative to Sparky's URL.
    pub url: String,
}

/// The commit a build was about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub url: Option<String>,
    pub branch: Option<String>,
    pub sha: Option<String>,
}

/// Where the log is and whether all of it was stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Chunk objects under this prefix, named by their 16-digit byte offset.
    pub prefix: String,
    pub size: u64,
    pub complete: bool,
    /// The whole log as plain text, relative to Sparky's URL.
    pub url: String,
}

/// The contents of `report.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildReport {
    pub version: u32,
    pub id: i64,
    pub project: String,
    pub status: String,
    pub trigger: String,
    pub params: Params,
    pub description: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub attempt: u32,
    pub parent_build: Option<i64>,
    pub commit: Option<Commit>,
    pub log: LogEntry,
    pub artifacts: Vec<ArtifactEntry>,
    /// Whether everything (log and artifacts) was stored.
    pub complete: bool,
    /// What could not be stored, when not.
    pub problems: Vec<String>,
}

impl BuildReport {
    /// The report of `build` as it ends (its status, times and exit code final).
    pub fn new(
        build: &Build,
        log_size: u64,
        log_complete: bool,
        artifacts: Vec<ArtifactEntry>,
        problems: Vec<String>,
    ) -> Self {
        let scm = &build.scm;
        let commit = (scm.url.is_some() || scm.sha.is_some()).then(|| Commit {
            url: scm.url.clone(),
            branch: scm.branch.clone(),
            sha: scm.sha.clone(),
        });
        BuildReport {
            version: VERSION,
            id: build.id,
            project: build.project.clone(),
            status: build.status.as_str().into(),
            trigger: build.trigger.as_str().into(),
            params: build.params.clone(),
            description: build.description.clone(),
            created_at: rfc3339(build.created_at),
            started_at: build.started_at.map(rfc3339),
            finished_at: build.finished_at.map(rfc3339),
            duration_ms: build.started_at.zip(build.finished_at).map(|(s, f)| f - s),
            exit_code: build.exit_code,
            error: build.error.clone(),
            attempt: build.attempt,
            parent_build: build.parent_build,
            commit,
            log: LogEntry {
                prefix: Key::log_prefix(&build.project, build.id),
                size: log_size,
                complete: log_complete,
                url: format!("/builds/{}/log", build.id),
            },
            artifacts,
            complete: problems.is_empty(),
            problems,
        }
    }

    /// Stores this report as its build's `report.json`, retrying until `deadline`
    /// (a deadline already past: one attempt). `Err` says what went wrong, for the
    /// build's `report_error`.
    pub async fn store(&self, reports: &dyn ReportStore, deadline: Instant) -> Result<(), String> {
        let written = |e: &dyn std::fmt::Display| format!("report.json could not be written ({e})");
        let body = Bytes::from(serde_json::to_vec_pretty(self).map_err(|e| written(&e))?);
        let key = Key::report(&self.project, self.id).map_err(|e| written(&e))?;
        retry::until(deadline, "report.json", || reports.put(&key, body.clone()))
            .await
            .map_err(|e| format!("report.json could not be stored ({})", error_chain(&e)))
    }
}

/// Stores `report.json` for a build that ended without a runner recording it: swept as
/// `lost`, or canceled before it started. Whatever log a vanished runner stored is
/// counted; such a report is marked incomplete. Failures are logged, not returned:
/// the build's status stands either way.
pub async fn store_without_runner(ctx: &Ctx, build_id: i64) {
    let Ok(Some(build)) = ctx.store.build(build_id).await else { return };
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
    let report = BuildReport::new(&build, log_size, problems.is_empty(), Vec::new(), problems);
    if let Err(error) = report.store(ctx.reports.as_ref(), Instant::now()).await {
        tracing::warn!(build_id, %error, "could not store report.json of a build that ended without its runner");
    }
}
