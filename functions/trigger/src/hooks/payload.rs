//! Reading a push event's payload. GitHub, GitLab and Gitea all send JSON with `ref`
//! and `after`; the repository's URLs sit in `repository` (and, for GitLab, `project`)
//! under keys ending in `url`. GitHub may also send the JSON as the `payload` field of
//! a form.

use serde_json::Value;
use sparky_core::repo::is_zero_sha;

use super::pull::{first_text, text};

/// What a push says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    /// Every URL the payload gives for the repository.
    pub urls: Vec<String>,
    pub kind: RefKind,
    /// The branch or tag name.
    pub name: String,
    /// The new head; `None` when the push deleted the ref.
    pub sha: Option<String>,
    /// Who pushed (the host's login or name), if the payload says.
    pub by: Option<String>,
    /// The new head's commit message, if the payload carries it.
    pub message: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    Branch,
    Tag,
}

/// Reads a push payload, or says what is wrong with it.
pub fn parse(body: &[u8], form: bool) -> Result<Push, String> {
    let json: Value = if form {
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_bytes(body).map_err(|e| format!("malformed form body: {e}"))?;
        let payload = fields
            .into_iter()
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v)
            .ok_or("the form has no `payload` field")?;
        serde_json::from_str(&payload).map_err(|e| format!("the payload is not JSON: {e}"))?
    } else {
        serde_json::from_slice(body).map_err(|e| format!("the payload is not JSON: {e}"))?
    };
    let full_ref = json.get("ref").and_then(Value::as_str).ok_or("the payload has no `ref`")?;
    let (kind, name) = if let Some(branch) = full_ref.strip_prefix("refs/heads/") {
        (RefKind::Branch, branch)
    } else if let Some(tag) = full_ref.strip_prefix("refs/tags/") {
        (RefKind::Tag, tag)
    } else {
        return Err(format!(
            "`ref` {full_ref:?} is neither a branch (refs/heads/...) nor a tag (refs/tags/...)"
        ));
    };
    let after = json.get("after").and_then(Value::as_str).ok_or("the payload has no `after` commit")?;
    let deleted = json.get("deleted").and_then(Value::as_bool).unwrap_or(false) || is_zero_sha(after);
    let mut urls = Vec::new();
    for section in ["repository", "project"] {
        if let Some(Value::Object(fields)) = json.get(section) {
            for (key, value) in fields {
                if let (true, Some(url)) = (key.ends_with("url"), value.as_str())
                    && !url.is_empty()
                    && !urls.iter().any(|u| u == url)
                {
                    urls.push(url.to_string());
                }
            }
        }
    }
    if urls.is_empty() {
        return Err("the payload names no repository URL (repository.clone_url, .git_http_url, ...)".into());
    }
    // GitHub and Gitea send `head_commit`; GitLab lists `commits`, the head among them.
    let head_in_commits = json.get("commits").and_then(Value::as_array).and_then(|commits| {
        commits.iter().find(|c| c.get("id").and_then(Value::as_str) == Some(after)).or(commits.last())
    });
    let message = text(&json, &["head_commit", "message"])
        .or_else(|| head_in_commits.and_then(|c| text(c, &["message"])))
        .map(str::to_string);
    let by = first_text(
        &json,
        &[
            &["pusher", "login"],
            &["pusher", "username"],
            &["pusher", "name"],
            &["user_username"],
            &["user_name"],
        ],
    );
    let sha = (!deleted).then(|| after.to_string());
    Ok(Push { urls, kind, name: name.to_string(), sha, by, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_hosts_payloads() {
        let github = br#"{"ref":"refs/heads/main","before":"a","after":"1111111111111111111111111111111111111111","deleted":false,
            "repository":{"full_name":"acme/app","clone_url":"https://github.com/acme/app.git","ssh_url":"git@github.com:acme/app.git","html_url":"https://github.com/acme/app"}}"#;
        let push = parse(github, false).expect("github");
        assert_eq!((push.kind, push.name.as_str()), (RefKind::Branch, "main"));
        assert_eq!(push.sha.as_deref(), Some("1111111111111111111111111111111111111111"));
        assert!(push.urls.contains(&"git@github.com:acme/app.git".to_string()));
        assert_eq!((push.by, push.message), (None, None));
        let with_who =
            br#"{"ref":"refs/heads/main","after":"3333","repository":{"clone_url":"https://x/a.git"},
            "pusher":{"name":"ada"},"head_commit":{"message":"Fix the flux capacitor"}}"#;
        let push = parse(with_who, false).expect("github with pusher");
        assert_eq!(push.by.as_deref(), Some("ada"));
        assert_eq!(push.message.as_deref(), Some("Fix the flux capacitor"));
        let gitlab_commits = br#"{"ref":"refs/heads/main","after":"bbbb","user_username":"grace","project":{"git_http_url":"https://x/a.git"},
            "commits":[{"id":"aaaa","message":"older"},{"id":"bbbb","message":"Newest"}]}"#;
        let push = parse(gitlab_commits, false).expect("gitlab with commits");
        assert_eq!((push.by.as_deref(), push.message.as_deref()), (Some("grace"), Some("Newest")));

        let gitlab = br#"{"object_kind":"tag_push","ref":"refs/tags/v1.0","after":"2222222222222222222222222222222222222222",
            "project":{"git_http_url":"https://gitlab.com/acme/app.git","git_ssh_url":"git@gitlab.com:acme/app.git"}}"#;
        let push = parse(gitlab, false).expect("gitlab");
        assert_eq!((push.kind, push.name.as_str()), (RefKind::Tag, "v1.0"));

        let deleted = br#"{"ref":"refs/heads/old","after":"0000000000000000000000000000000000000000","repository":{"clone_url":"https://gitea.example/acme/app.git"}}"#;
        assert_eq!(parse(deleted, false).expect("gitea").sha, None);

        let form = format!(
            "payload={}",
            serde_urlencoded::to_string([("x", std::str::from_utf8(github).expect("utf8"))])
                .expect("encode")
                .trim_start_matches("x=")
        );
        assert_eq!(parse(form.as_bytes(), true).expect("form").name, "main");
    }

    #[test]
    fn says_what_is_wrong() {
        assert!(parse(b"{not json", false).unwrap_err().contains("not JSON"));
        assert!(parse(br#"{"after":"1"}"#, false).unwrap_err().contains("no `ref`"));
        assert!(
            parse(br#"{"ref":"refs/notes/x","after":"1"}"#, false).unwrap_err().contains("neither a branch")
        );
        assert!(
            parse(br#"{"ref":"refs/heads/m","after":"1","repository":{}}"#, false)
                .unwrap_err()
                .contains("no repository URL")
        );
    }
}
