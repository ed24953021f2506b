//! `report.json`: one build's summary, stored beside its log and artifacts
//! (`projects/{project}/builds/{id}/report.json`) when it ends, for other tools to
//! read without Sparky's database. docs/api.md documents its fields; `version` goes
//! up when one changes meaning or goes away (new fields may appear at any time).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Key, ReportStore, retry};
use crate::{
    error::error_chain,
    model::{Attempt, Build, Event, Params, Reason},
    time::rfc3339,
};

/// The format's version. 2: `attempt` is the number of the build's last attempt (it
/// counted retries in 1, now `retries_used`), and `attempts` lists them.
pub const VERSION: u32 = 2;

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

/// One try at running the build, numbered from 1 as in the API and on the pages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptEntry {
    pub number: u32,
    pub dispatched_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// What it went to: `queued` (tried again) or the build's terminal status.
    pub outcome: Option<String>,
    /// Why, as a word (`delivery_lost`, `runner_vanished`, `finished`, ...) and as people
    /// read it.
    pub reason: Option<String>,
    pub reason_text: Option<String>,
}

impl AttemptEntry {
    /// The attempts of `build` from its events. A build that just ended by its runner,
    /// whose end is not recorded yet, has its last attempt closed by its status.
    pub fn list(build: &Build, events: &[Event]) -> Vec<AttemptEntry> {
        let mut attempts = Attempt::from_events(events);
        if let (Some(last), Some(finished)) = (attempts.last_mut(), build.finished_at)
            && last.ended_at.is_none()
            && build.status.is_terminal()
        {
            last.ended_at = Some(finished);
            last.outcome = Some(build.status);
            last.reason = Some(Reason::Finished);
        }
        attempts.iter().map(AttemptEntry::from).collect()
    }
}

impl From<&Attempt> for AttemptEntry {
    fn from(a: &Attempt) -> Self {
        AttemptEntry {
            number: a.number,
            dispatched_at: rfc3339(a.dispatched_at),
            started_at: a.started_at.map(rfc3339),
            ended_at: a.ended_at.map(rfc3339),
            outcome: a.outcome.map(|s| s.as_str().to_string()),
            reason: a.reason.map(|r| r.as_str().to_string()),
            reason_text: a.reason.map(|r| r.describe().to_string()),
        }
    }
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
    /// The number of the last attempt (0: it never went to a runner).
    pub attempt: u32,
    pub retries_used: u32,
    pub attempts: Vec<AttemptEntry>,
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
    /// The report of `build` as it ends (its status, times and exit code final), with
    /// its lifecycle `events`.
    pub fn new(
        build: &Build,
        events: &[Event],
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
            retries_used: build.retries_used,
            attempts: AttemptEntry::list(build, events),
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
