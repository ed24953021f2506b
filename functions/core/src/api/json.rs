//! The JSON shapes of the API: a build, and a lifecycle event.

use serde::Serialize;

use super::build_url;
use crate::{
    model::{Build, Event, Params, PullRequest},
    reports::report::AttemptEntry,
    store::Delivery,
    time::rfc3339,
};

/// A build in the API's JSON.
#[derive(Debug, Serialize)]
pub struct BuildJson {
    pub id: i64,
    pub project: String,
    pub status: &'static str,
    pub trigger: &'static str,
    pub params: Params,
    pub description: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<i64>,
    /// The number of its current or last attempt (0: never sent to a runner yet).
    pub attempt: u32,
    /// Retries used: attempts that started and whose runner vanished.
    pub retries_used: u32,
    /// Each attempt and how it ended (a single build's answer only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptEntry>>,
    /// What its status changes were announced to, and how that went (a single
    /// build's answer only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<DeliveryJson>>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub scm_url: Option<String>,
    pub scm_branch: Option<String>,
    pub scm_sha: Option<String>,
    /// The pull (merge) request it builds: number, branches, fork or not, link.
    pub pull_request: Option<PullRequest>,
    pub parent_build: Option<i64>,
    /// Who or what asked for it, where known: a pusher's login, a crontab line, a
    /// trigger file, `API token`, `a person in the UI`.
    pub triggered_by: Option<String>,
    /// The message of the commit it builds (a pull request's title), where known.
    pub commit_message: Option<String>,
    pub log_size: Option<u64>,
    /// Why the build's report is incomplete: report storage failed past its retries.
    pub report_error: Option<String>,
    pub url: String,
    pub log_url: String,
}

impl From<&Build> for BuildJson {
    fn from(b: &Build) -> Self {
        BuildJson {
            id: b.id,
            project: b.project.clone(),
            status: b.status.as_str(),
            trigger: b.trigger.as_str(),
            params: b.params.clone(),
            description: b.description.clone(),
            created_at: rfc3339(b.created_at),
            started_at: b.started_at.map(rfc3339),
            finished_at: b.finished_at.map(rfc3339),
            exit_code: b.exit_code,
            duration_ms: b.started_at.zip(b.finished_at).map(|(s, f)| f - s),
            attempt: b.attempt,
            retries_used: b.retries_used,
            attempts: None,
            deliveries: None,
            error: b.error.clone(),
            cancel_requested: b.cancel_requested,
            scm_url: b.scm.url.clone(),
            scm_branch: b.scm.branch.clone(),
            scm_sha: b.scm.sha.clone(),
            pull_request: b.pull_request.clone(),
            parent_build: b.parent_build,
            triggered_by: b.triggered_by.clone(),
            commit_message: b.commit_message.clone(),
            log_size: b.log_size,
            report_error: b.report_error.clone(),
            url: build_url(b.id),
            log_url: format!("{}/log", build_url(b.id)),
        }
    }
}

impl BuildJson {
    /// A build with its attempts, from its lifecycle `events`, and its deliveries.
    pub fn with_history(build: &Build, events: &[Event], deliveries: &[Delivery]) -> Self {
        BuildJson {
            attempts: Some(AttemptEntry::list(build, events)),
            deliveries: Some(deliveries.iter().map(DeliveryJson::from).collect()),
            ..BuildJson::from(build)
        }
    }
}

/// A delivery in the API's JSON: a commit status posted (or not yet) for a change.
#[derive(Debug, Serialize)]
pub struct DeliveryJson {
    /// e.g. `status:github`.
    pub target: String,
    /// What was to be said (a commit status's state), when it can be read.
    pub says: Option<String>,
    /// `pending`, `sent`, `failed` or `superseded` (a newer one made it moot).
    pub state: String,
    pub attempts: u32,
    /// The host's last answer, or why it failed.
    pub outcome: Option<String>,
    pub created_at: String,
    pub done_at: Option<String>,
}

impl From<&Delivery> for DeliveryJson {
    fn from(d: &Delivery) -> Self {
        let says = serde_json::from_str::<serde_json::Value>(&d.payload)
            .ok()
            .and_then(|p| p["state"].as_str().or(p["outcome"].as_str()).map(str::to_string));
        DeliveryJson {
            target: d.target.clone(),
            says,
            state: d.state.clone(),
            attempts: d.attempts,
            outcome: d.outcome.clone(),
            created_at: rfc3339(d.created_at),
            done_at: d.done_at.map(rfc3339),
        }
    }
}

/// A lifecycle event in the API's JSON (`GET /api/v1/events`).
#[derive(Debug, Serialize)]
pub struct EventJson {
    pub id: i64,
    pub build_id: i64,
    pub project: String,
    /// `null` for the event that created the build.
    pub from: Option<&'static str>,
    pub to: &'static str,
    pub reason: &'static str,
    pub attempt: u32,
    pub at: String,
    pub url: String,
}

impl From<&Event> for EventJson {
    fn from(e: &Event) -> Self {
        EventJson {
            id: e.id,
            build_id: e.build_id,
            project: e.project.clone(),
            from: e.from.map(|s| s.as_str()),
            to: e.to.as_str(),
            reason: e.reason.as_str(),
            attempt: e.attempt,
            at: rfc3339(e.at),
            url: build_url(e.build_id),
        }
    }
}
