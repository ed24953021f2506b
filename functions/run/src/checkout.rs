//! Checking out a build's commit before its script runs. A build with `SCM_URL` gets its
//! repository in the workspace: a pull request's head from its ref in the target
//! repository (`SCM_FETCH_REF`: `refs/pull/N/head`, `refs/merge-requests/N/head`),
//! else `SCM_SHA` if known (fetched alone and shallow where the remote allows, else with
//! the branches), otherwise the head of `SCM_BRANCH` (or of the remote's default
//! branch). The checkout runs as a step of the build — its output
//! in the log, under the build's timeout and cancel — and a failed checkout fails the
//! build before its script starts.

use sparky_core::{
    model::{Build, ScmRef},
    project::ProjectConfig,
};

/// What to check out: the build's commit, or else the project's repository.
pub fn target(build: &Build, config: &ProjectConfig) -> Option<ScmRef> {
    if build.scm.url.is_some() {
        return Some(build.scm.clone());
    }
    let scm = config.scm.as_ref()?;
    // A literal branch name is checked out; a glob leaves the remote's default branch.
    let branch = scm.branch.clone().filter(|b| !b.contains(['*', '?']));
    Some(ScmRef { url: Some(scm.url.clone()), branch, sha: None })
}

/// The checkout step's script; it reads `SCM_URL`, `SCM_BRANCH`, `SCM_SHA` and
/// `SCM_FETCH_REF` from its environment and ends by printing the commit it checked out.
pub const SCRIPT: &str = r#"
say() { echo "[sparky] $*"; }
say "checking out $SCM_URL at ${SCM_SHA:-${SCM_BRANCH:-the default branch}}"
git init -q .
git remote add origin "$SCM_URL"
if [ -n "${SCM_FETCH_REF:-}" ]; then
  git fetch -q origin "+$SCM_FETCH_REF:refs/remotes/origin/sparky-head"
  git -c advice.detachedHead=false checkout -q "${SCM_SHA:-refs/remotes/origin/sparky-head}"
elif [ -n "${SCM_SHA:-}" ]; then
  if ! git fetch -q --depth 1 origin "$SCM_SHA" 2>/dev/null; then
    say "the remote does not serve single commits; fetching its branches and tags"
    git fetch -q --tags origin '+refs/heads/*:refs/remotes/origin/*'
  fi
  git -c advice.detachedHead=false checkout -q "$SCM_SHA"
else
  git fetch -q --depth 1 origin "${SCM_BRANCH:-HEAD}"
  git -c advice.detachedHead=false checkout -q FETCH_HEAD
fi
say "checked out $(git rev-parse HEAD)"
"#;

/// The commit checked out in `workspace`.
pub async fn head_commit(workspace: &std::path::Path) -> Option<String> {
    let output = tokio::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(workspace)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    let sha = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !sha.is_empty()).then_some(sha)
}
