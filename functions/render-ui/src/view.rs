//! Builds and times shaped for the templates: everything a page shows is computed
//! here, so templates only lay it out (and escape it).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sparky_core::{
    model::{Attempt, Build, PullRequest, Reason},
    time::{human_duration, rfc3339},
};

/// A point in time as a page shows it.
#[derive(Debug, Serialize)]
pub struct When {
    /// RFC 3339, for `<time datetime=...>`.
    pub iso: String,
    /// `2025-11-25 07:51:20 UTC`
    pub text: String,
    /// `3m 4s ago`
    pub ago: String,
}

impl When {
    pub fn new(ms: i64, now: i64) -> When {
        let text = DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap_or_default()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string();
        When { iso: rfc3339(ms), text, ago: format!("{} ago", human_duration(now - ms)) }
    }
}

/// A build as pages show it.
#[derive(Debug, Serialize)]
pub struct BuildView {
    pub id: i64,
    pub project: String,
    pub status: &'static str,
    pub live: bool,
    pub trigger: &'static str,
    pub params: Vec<(String, String)>,
    pub description: Option<String>,
    pub created: When,
    pub started: Option<When>,
    pub finished: Option<When>,
    /// How long it ran, or has been running.
    pub duration: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// The number of its current or last attempt; 0 before it was sent to a runner.
    pub attempt: u32,
    pub cancel_requested: bool,
    pub scm_url: Option<String>,
    pub scm_branch: Option<String>,
    pub scm_sha: Option<String>,
    pub parent_build: Option<i64>,
    /// Why the build's report is incomplete (storage failed past its retries).
    pub report_error: Option<String>,
    /// The pull request it builds, if any.
    pub pull_request: Option<PullRequest>,
}

impl BuildView {
    pub fn new(build: &Build, now: i64) -> BuildView {
        let duration = match (build.started_at, build.finished_at) {
            (Some(start), Some(end)) => Some(human_duration(end - start)),
            (Some(start), None) if !build.status.is_terminal() => Some(human_duration(now - start)),
            _ => None,
        };
        BuildView {
            id: build.id,
            project: build.project.clone(),
            status: build.status.as_str(),
            live: !build.status.is_terminal(),
            trigger: build.trigger.as_str(),
            params: build.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            description: build.description.clone(),
            created: When::new(build.created_at, now),
            started: build.started_at.map(|t| When::new(t, now)),
            finished: build.finished_at.map(|t| When::new(t, now)),
            duration,
            exit_code: build.exit_code,
            error: build.error.clone(),
            attempt: build.attempt,
            cancel_requested: build.cancel_requested,
            scm_url: build.scm.url.clone(),
            scm_branch: build.scm.branch.clone(),
            scm_sha: build.scm.sha.clone(),
            parent_build: build.parent_build,
            report_error: build.report_error.clone(),
            pull_request: build.pull_request.clone(),
        }
    }
}

/// One attempt at running a build, as the build page lists it.
#[derive(Debug, Serialize)]
pub struct AttemptView {
    pub number: u32,
    pub dispatched: When,
    pub started: Option<When>,
    pub ended: Option<When>,
    /// `queued` (tried again) or the terminal status it ended with.
    pub outcome: Option<&'static str>,
    pub reason: Option<&'static str>,
}

impl AttemptView {
    /// The attempts worth listing: all of them, once there was more than one or one
    /// ended otherwise than by its runner recording the result.
    pub fn list(attempts: &[Attempt], now: i64) -> Vec<AttemptView> {
        let plain =
            attempts.len() <= 1 && attempts.iter().all(|a| a.reason.is_none_or(|r| r == Reason::Finished));
        if plain {
            return Vec::new();
        }
        attempts
            .iter()
            .map(|a| AttemptView {
                number: a.number,
                dispatched: When::new(a.dispatched_at, now),
                started: a.started_at.map(|t| When::new(t, now)),
                ended: a.ended_at.map(|t| When::new(t, now)),
                outcome: a.outcome.map(|s| s.as_str()),
                reason: a.reason.map(|r| r.describe()),
            })
            .collect()
    }
}

/// Bytes as people read them: `512 B`, `3.2 KiB`, `1.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_sizes() {
        let when = When::new(1_764_057_080_123, 1_764_057_080_123 + 184_000);
        assert_eq!(when.text, "2025-11-25 07:51:20 UTC");
        assert_eq!(when.iso, "2025-11-25T07:51:20.123Z");
        assert_eq!(when.ago, "3m 4s ago");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3 * 1024 + 205), "3.2 KiB");
        assert_eq!(human_size(1024 * 1024), "1.0 MiB");
    }
}
