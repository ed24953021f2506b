//! Builds and times shaped for the templates: everything a page shows is computed
//! here, so templates only lay it out (and escape it).

use serde::Serialize;
use sparky_core::{
    model::{Attempt, Build, PullRequest, Reason},
    time::{human_duration, rfc3339, utc_text},
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
        When { iso: rfc3339(ms), text: utc_text(ms), ago: format!("{} ago", human_duration(now - ms)) }
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
    /// The commit's first 10 hex digits, and its page on the host when known.
    pub short_sha: Option<String>,
    pub commit_url: Option<String>,
    /// Who or what asked for it (the parent build is shown apart).
    pub triggered_by: Option<String>,
    /// The first line of the commit's message.
    pub commit_title: Option<String>,
    /// `running` builds: when they started, for a live duration in the viewer's browser.
    pub running_since: Option<String>,
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
            short_sha: build.scm.sha.as_ref().map(|sha| sha.chars().take(10).collect()),
            commit_url: build
                .scm
                .url
                .as_deref()
                .zip(build.scm.sha.as_deref())
                .and_then(|(u, s)| commit_url(u, s)),
            triggered_by: build.triggered_by.clone(),
            commit_title: build
                .commit_message
                .as_deref()
                .and_then(|m| m.lines().map(str::trim).find(|l| !l.is_empty()))
                .map(str::to_string),
            running_since: build.started_at.filter(|_| !build.status.is_terminal()).map(rfc3339),
        }
    }
}

/// A commit's page on the Git host its repository `url` points at, for the hosts whose
/// pages are known: `https://host/owner/repo(.git)` and `git@host:owner/repo(.git)`,
/// with GitLab's `/-/commit/` and everyone else's `/commit/`. `None` for anything
/// else (a local path, a `file://` URL): the SHA is shown without a link.
pub fn commit_url(url: &str, sha: &str) -> Option<String> {
    if sha.is_empty() || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let web = if let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) {
        // No credentials in a link.
        let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        format!("https://{rest}")
    } else {
        let rest = url.strip_prefix("ssh://").unwrap_or(url);
        let (_, host_path) = rest.split_once('@')?;
        let (host, path) = host_path.split_once(':').or_else(|| host_path.split_once('/'))?;
        format!("https://{host}/{}", path.trim_start_matches('/'))
    };
    let web = web.trim_end_matches('/').trim_end_matches(".git");
    if web.matches('/').count() < 4 {
        return None;
    }
    let sep = if web.contains("gitlab") { "/-/commit/" } else { "/commit/" };
    Some(format!("{web}{sep}{sha}"))
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

    #[test]
    fn links_commits_on_known_hosts_only() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let link = |url| commit_url(url, sha);
        assert_eq!(
            link("https://github.com/acme/app.git"),
            Some(format!("https://github.com/acme/app/commit/{sha}"))
        );
        assert_eq!(
            link("git@github.com:acme/app.git"),
            Some(format!("https://github.com/acme/app/commit/{sha}"))
        );
        assert_eq!(
            link("https://gitlab.com/group/sub/app"),
            Some(format!("https://gitlab.com/group/sub/app/-/commit/{sha}"))
        );
        assert_eq!(
            link("https://user:secret@gitea.example/acme/app.git"),
            Some(format!("https://gitea.example/acme/app/commit/{sha}"))
        );
        for none in ["/srv/git/app.git", "file:///srv/git/app.git", "https://example.com"] {
            assert_eq!(link(none), None, "{none}");
        }
        assert_eq!(commit_url("https://github.com/acme/app", "not-a-sha"), None);
    }
}
