//! Commit statuses: which status each build status change means on each host, and the
//! delivery that posts it.
//!
//! | Sparky | GitHub | GitLab | Gitea |
//! |---|---|---|---|
//! | queued | pending | pending | pending |
//! | running | pending ("running") | running | pending ("running") |
//! | succeeded | success | success | success |
//! | failed, timed out | failure | failed | failure |
//! | canceled | error ("canceled") | canceled | error ("canceled") |
//! | lost | error | failed | error |
//!
//! `dispatched` posts nothing. A build without a commit (a manual build of a project
//! whose checkout hasn't run yet) posts nothing until it has one.

use serde::{Deserialize, Serialize};

use crate::{
    Ctx,
    api::build_url,
    model::{Build, BuildStatus, Event},
    project::{
        ProjectConfig,
        statuses::{GitHost, StatusConfig},
    },
};

use super::Payload;

/// A commit status to post: everything but the token's value, which is read from the
/// secrets folder when it is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusPost {
    pub host: GitHost,
    /// The API's base URL.
    pub api: String,
    /// `owner/repo` (or GitLab's `group/.../project`).
    pub repo: String,
    pub sha: String,
    pub state: String,
    pub description: String,
    pub context: String,
    pub target_url: Option<String>,
    /// The name of the secret holding the API token.
    pub token: String,
}

/// The target of a host's statuses, e.g. `status:github`.
pub fn target(host: GitHost) -> String {
    format!("status:{}", host.as_str())
}

/// The commit status `event` of `build` means, and its target, if its project posts
/// statuses and the build has a commit.
pub fn derive(ctx: &Ctx, config: &ProjectConfig, build: &Build, event: &Event) -> Option<(String, Payload)> {
    let scm = config.scm.as_ref()?;
    let statuses = scm.statuses.as_ref()?;
    let post = post(ctx, statuses, &scm.url, build, event)?;
    Some((target(statuses.host), Payload::Status(post)))
}

fn post(
    ctx: &Ctx,
    statuses: &StatusConfig,
    scm_url: &str,
    build: &Build,
    event: &Event,
) -> Option<StatusPost> {
    let sha = build.scm.sha.clone()?;
    let (api, repo) = statuses.endpoint(build.scm.url.as_deref().unwrap_or(scm_url)).ok()?;
    let (state, words) = state(statuses.host, event.to)?;
    let public = ctx.config.public_url.as_deref();
    Some(StatusPost {
        host: statuses.host,
        api,
        repo,
        sha,
        state: state.into(),
        description: format!("Sparky build #{}: {words}", build.id),
        context: statuses.context(&build.project),
        target_url: public.map(|base| format!("{base}{}", build_url(build.id))),
        token: statuses.token.clone(),
    })
}

/// The host's state for a build status, and words for the description.
fn state(host: GitHost, status: BuildStatus) -> Option<(&'static str, &'static str)> {
    use BuildStatus::*;
    use GitHost::*;
    Some(match (host, status) {
        (_, Dispatched) => return None,
        (_, Queued) => ("pending", "queued"),
        (Gitlab, Running) => ("running", "running"),
        (_, Running) => ("pending", "running"),
        (_, Succeeded) => ("success", "succeeded"),
        (Gitlab, Failed) => ("failed", "failed"),
        (Gitlab, TimedOut) => ("failed", "timed out"),
        (_, Failed) => ("failure", "failed"),
        (_, TimedOut) => ("failure", "timed out"),
        (Gitlab, Canceled) => ("canceled", "canceled"),
        (_, Canceled) => ("error", "canceled"),
        (Gitlab, Lost) => ("failed", "its runner vanished"),
        (_, Lost) => ("error", "its runner vanished"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The states each host's API documents for a commit status.
    fn documented(host: GitHost) -> &'static [&'static str] {
        match host {
            GitHost::Github => &["error", "failure", "pending", "success"],
            GitHost::Gitlab => &["pending", "running", "success", "failed", "canceled", "skipped"],
            GitHost::Gitea => &["pending", "success", "error", "failure", "warning"],
        }
    }

    #[test]
    fn each_build_status_posts_the_state_its_host_documents() {
        use BuildStatus::*;
        // GitHub, GitLab, Gitea; as the table at the top of this module says.
        let table = [
            (Queued, ["pending", "pending", "pending"]),
            (Running, ["pending", "running", "pending"]),
            (Succeeded, ["success", "success", "success"]),
            (Failed, ["failure", "failed", "failure"]),
            (TimedOut, ["failure", "failed", "failure"]),
            (Canceled, ["error", "canceled", "error"]),
            (Lost, ["error", "failed", "error"]),
        ];
        for (status, states) in table {
            for (host, want) in [GitHost::Github, GitHost::Gitlab, GitHost::Gitea].into_iter().zip(states) {
                let (got, words) = state(host, status).unwrap_or_else(|| panic!("{host:?} {status:?}"));
                assert_eq!(got, want, "{host:?} {status:?}");
                assert!(documented(host).contains(&got), "{host:?} does not know {got}");
                assert!(!words.is_empty());
            }
        }
        for host in [GitHost::Github, GitHost::Gitlab, GitHost::Gitea] {
            assert_eq!(state(host, Dispatched), None, "a build handed to a runner posts nothing");
        }
        assert_eq!(table.len() + 1, BuildStatus::ALL.len(), "every status is in the table");
        // Where the state alone can't tell them apart, the description does.
        assert_eq!(state(GitHost::Github, Running).map(|s| s.1), Some("running"));
        assert_eq!(state(GitHost::Gitea, Canceled).map(|s| s.1), Some("canceled"));
        assert_eq!(state(GitHost::Github, TimedOut).map(|s| s.1), Some("timed out"));
    }
}
