//! Reading a pull (merge) request event: GitHub's and Gitea's `pull_request`, GitLab's
//! Merge Request Hook. What builds: a request opened or reopened, and new commits on
//! it — GitHub `opened`, `synchronize`, `reopened`; Gitea/Forgejo `opened`,
//! `synchronized`, `reopened`; GitLab `open`, `reopen`, and `update` when it carries
//! `oldrev` (new commits; a title or label edit doesn't).

use serde_json::Value;
use sparky_core::model::PullRequest;

use super::hosts::Host;

/// What a pull request event says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullEvent {
    /// The target repository's URLs.
    pub urls: Vec<String>,
    pub action: String,
    /// `Err`: why this action builds nothing.
    pub builds: Result<(), String>,
    pub pull: PullRequest,
    /// The request's head commit.
    pub sha: String,
    /// Who sent the event (the host's login), if the payload says.
    pub by: Option<String>,
    /// The request's title, shown and searched as its builds' commit message.
    pub title: Option<String>,
}

/// Reads a pull request payload from `host`, or says what is wrong with it.
pub fn parse(host: Host, body: &[u8]) -> Result<PullEvent, String> {
    let json: Value = serde_json::from_slice(body).map_err(|e| format!("the payload is not JSON: {e}"))?;
    match host {
        Host::GitHub | Host::Gitea => hub(host, &json),
        Host::GitLab => lab(&json),
    }
}

pub(super) fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(key))?.as_str().filter(|s| !s.is_empty())
}

fn required<'a>(value: &'a Value, path: &[&str]) -> Result<&'a str, String> {
    text(value, path).ok_or_else(|| format!("the payload has no `{}`", path.join(".")))
}

/// The first of `paths` that holds a non-empty string.
pub(super) fn first_text(value: &Value, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|path| text(value, path)).map(str::to_string)
}

/// Every `...url` of the objects at `sections`.
fn urls(json: &Value, sections: &[&[&str]]) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for path in sections {
        let Some(Value::Object(fields)) = path.iter().try_fold(json, |v, key| v.get(key)) else { continue };
        for (key, value) in fields {
            if let (true, Some(url)) = (key.ends_with("url"), value.as_str())
                && !url.is_empty()
                && !urls.iter().any(|u| u == url)
            {
                urls.push(url.to_string());
            }
        }
    }
    urls
}

/// A link for the pages: only an http(s) URL.
fn web_url(url: Option<&str>) -> Option<String> {
    url.filter(|u| u.starts_with("https://") || u.starts_with("http://")).map(str::to_string)
}

/// GitHub and Gitea: `action`, `number`, `pull_request.{head,base}.{ref,sha,repo}`.
fn hub(host: Host, json: &Value) -> Result<PullEvent, String> {
    let action = required(json, &["action"])?.to_string();
    let number = json
        .get("number")
        .or_else(|| json.get("pull_request").and_then(|p| p.get("number")))
        .and_then(Value::as_u64)
        .ok_or("the payload has no pull request `number`")?;
    let pr = json.get("pull_request").ok_or("the payload has no `pull_request`")?;
    let sha = required(pr, &["head", "sha"])?.to_string();
    let head_repo = text(pr, &["head", "repo", "full_name"]);
    let base_repo = text(pr, &["base", "repo", "full_name"]);
    let new_commits = if host == Host::GitHub { "synchronize" } else { "synchronized" };
    let builds = if ["opened", "reopened", new_commits].contains(&action.as_str()) {
        Ok(())
    } else {
        Err(format!("pull request action {action:?} builds nothing (opened, {new_commits} and reopened do)"))
    };
    let target_urls = urls(json, &[&["pull_request", "base", "repo"], &["repository"]]);
    if target_urls.is_empty() {
        return Err("the payload names no repository URL".into());
    }
    Ok(PullEvent {
        urls: target_urls,
        action,
        builds,
        sha,
        by: first_text(json, &[&["sender", "login"], &["sender", "username"]]),
        title: text(pr, &["title"]).map(str::to_string),
        pull: PullRequest {
            number,
            source_branch: required(pr, &["head", "ref"])?.to_string(),
            target_branch: required(pr, &["base", "ref"])?.to_string(),
            head_ref: format!("refs/pull/{number}/head"),
            // A head repository that is gone (a deleted fork) is someone else's too.
            fork: head_repo.is_none() || head_repo != base_repo,
            url: web_url(text(pr, &["html_url"])),
        },
    })
}

/// GitLab: `object_attributes.{iid, action, source_branch, target_branch, last_commit,
/// oldrev, source_project_id, target_project_id, url}`.
fn lab(json: &Value) -> Result<PullEvent, String> {
    let mr = json.get("object_attributes").ok_or("the payload has no `object_attributes`")?;
    let number = mr.get("iid").and_then(Value::as_u64).ok_or("the payload has no `object_attributes.iid`")?;
    let action = text(mr, &["action"]).unwrap_or("open").to_string();
    let builds = match action.as_str() {
        "open" | "reopen" => Ok(()),
        "update" if text(mr, &["oldrev"]).is_some() => Ok(()),
        "update" => Err(
            "a merge request update without new commits (a title, label or description edit) builds nothing"
                .into(),
        ),
        other => {
            Err(format!("merge request action {other:?} builds nothing (open, reopen and new commits do)"))
        }
    };
    let source = mr.get("source_project_id").and_then(Value::as_i64);
    let target = mr.get("target_project_id").and_then(Value::as_i64);
    let target_urls = urls(json, &[&["object_attributes", "target"], &["project"], &["repository"]]);
    if target_urls.is_empty() {
        return Err("the payload names no repository URL".into());
    }
    Ok(PullEvent {
        urls: target_urls,
        action,
        builds,
        sha: required(mr, &["last_commit", "id"])?.to_string(),
        by: first_text(json, &[&["user", "username"], &["user", "name"]]),
        title: text(mr, &["title"]).map(str::to_string),
        pull: PullRequest {
            number,
            source_branch: required(mr, &["source_branch"])?.to_string(),
            target_branch: required(mr, &["target_branch"])?.to_string(),
            head_ref: format!("refs/merge-requests/{number}/head"),
            fork: source.is_none() || source != target,
            url: web_url(text(mr, &["url"])),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "1111111111111111111111111111111111111111";

    fn github(action: &str, head_repo: &str) -> Vec<u8> {
        serde_json::json!({
            "action": action, "number": 7,
            "pull_request": {
                "number": 7, "html_url": "https://github.com/acme/app/pull/7", "title": "Make it faster",
                "head": { "ref": "feature", "sha": SHA, "repo": { "full_name": head_repo, "clone_url": format!("https://github.com/{head_repo}.git") } },
                "base": { "ref": "main", "sha": "2".repeat(40), "repo": { "full_name": "acme/app", "clone_url": "https://github.com/acme/app.git" } },
            },
            "repository": { "full_name": "acme/app", "clone_url": "https://github.com/acme/app.git", "ssh_url": "git@github.com:acme/app.git" },
            "sender": { "login": "ada" },
        })
        .to_string()
        .into_bytes()
    }

    /// GitLab's Merge Request Hook, from project `source` into project 1.
    fn gitlab_mr(action: &str, oldrev: Option<&str>, source: i64) -> Vec<u8> {
        let mut attributes = serde_json::json!({
            "iid": 3, "action": action, "source_branch": "feature", "target_branch": "main",
            "source_project_id": source, "target_project_id": 1, "url": "https://gitlab.com/acme/app/-/merge_requests/3",
            "last_commit": { "id": SHA },
            "target": { "git_http_url": "https://gitlab.com/acme/app.git" },
        });
        if let Some(rev) = oldrev {
            attributes["oldrev"] = rev.into();
        }
        serde_json::json!({ "object_kind": "merge_request", "object_attributes": attributes,
            "user": { "username": "grace", "name": "Grace H." },
            "project": { "git_http_url": "https://gitlab.com/acme/app.git" } })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn reads_github_and_gitea_pull_requests() {
        let event = parse(Host::GitHub, &github("synchronize", "acme/app")).expect("github");
        assert_eq!(event.builds, Ok(()));
        assert_eq!(event.sha, SHA);
        assert_eq!((event.pull.number, event.pull.fork), (7, false));
        assert_eq!(
            (event.pull.source_branch.as_str(), event.pull.target_branch.as_str()),
            ("feature", "main")
        );
        assert_eq!(event.pull.head_ref, "refs/pull/7/head");
        assert_eq!((event.by.as_deref(), event.title.as_deref()), (Some("ada"), Some("Make it faster")));
        assert!(event.urls.contains(&"git@github.com:acme/app.git".to_string()));
        assert!(!event.urls.iter().any(|u| u.contains("stranger")), "the target repository's URLs only");
        let fork = parse(Host::GitHub, &github("opened", "stranger/app")).expect("fork");
        assert!(fork.pull.fork);
        assert!(parse(Host::GitHub, &github("labeled", "acme/app")).expect("labeled").builds.is_err());
        assert!(
            parse(Host::Gitea, &github("synchronize", "acme/app")).expect("gitea").builds.is_err(),
            "Gitea says synchronized"
        );
        assert_eq!(parse(Host::Gitea, &github("synchronized", "acme/app")).expect("gitea").builds, Ok(()));
    }

    #[test]
    fn opened_and_reopened_requests_build_and_closed_ones_do_not() {
        for host in [Host::GitHub, Host::Gitea] {
            for action in ["opened", "reopened"] {
                let event = parse(host, &github(action, "acme/app")).expect("parsed");
                assert_eq!((event.action.as_str(), event.builds), (action, Ok(())), "{host:?}");
                assert_eq!((event.sha.as_str(), event.pull.number), (SHA, 7), "{host:?} {action}");
            }
            let closed = parse(host, &github("closed", "acme/app")).expect("closed");
            assert!(closed.builds.unwrap_err().contains("\"closed\" builds nothing"), "{host:?}");
        }
        for action in ["open", "reopen"] {
            let event = parse(Host::GitLab, &gitlab_mr(action, None, 1)).expect("parsed");
            assert_eq!((event.action.as_str(), event.builds), (action, Ok(())), "no oldrev needed");
            assert_eq!((event.sha.as_str(), event.pull.number, event.pull.fork), (SHA, 3, false));
        }
        let closed = parse(Host::GitLab, &gitlab_mr("close", None, 1)).expect("closed");
        assert!(closed.builds.unwrap_err().contains("\"close\" builds nothing"));
    }

    #[test]
    fn reads_gitlab_merge_requests_and_ignores_edits() {
        let event = parse(Host::GitLab, &gitlab_mr("update", Some(&"3".repeat(40)), 1)).expect("update");
        assert_eq!((event.builds.clone(), event.pull.fork), (Ok(()), false));
        assert_eq!(event.pull.head_ref, "refs/merge-requests/3/head");
        assert_eq!((event.by.as_deref(), event.title), (Some("grace"), None));
        let edit = parse(Host::GitLab, &gitlab_mr("update", None, 1)).expect("edit");
        assert!(edit.builds.unwrap_err().contains("without new commits"));
        assert!(parse(Host::GitLab, &gitlab_mr("open", None, 2)).expect("fork").pull.fork);
        assert!(parse(Host::GitLab, &gitlab_mr("merge", None, 1)).expect("merged").builds.is_err());
        assert!(parse(Host::GitLab, b"{}").unwrap_err().contains("object_attributes"));
    }
}
