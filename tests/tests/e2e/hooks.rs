//! Git webhooks as GitHub, GitLab and Gitea send them, signed by the test, for a real
//! local repository that the queued builds check out.

use std::time::Duration;

use serde_json::{Value, json};
use sparky_tests::{Api, Reply, Sparky, git::Repo, hmac_hex, write_project};

const SECRET: &str = "hook-s3cret";

struct Setup {
    sparky: Sparky,
    repo: Repo,
    /// Last, so that it is removed after sparky is stopped (fields drop in order).
    _dir: tempfile::TempDir,
}

/// Projects: `app` (main only) and `tags` (tags too) on the test's repository,
/// `other` on another repository.
fn setup(envs: &[(&str, &str)]) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repo::init(&dir.path().join("app.git"));
    let url = repo.path.display().to_string();
    let script = "script: |\n  echo \"$SCM_BRANCH $SCM_SHA $(git rev-parse HEAD) $(cat README)\"\n";
    write_project(dir.path(), "app", &format!("scm: {{ url: '{url}', branch: main }}\n{script}"));
    write_project(
        dir.path(),
        "tags",
        &format!("scm: {{ url: 'file://{url}/', branch: 'release-*', tags: true }}\n{script}"),
    );
    write_project(dir.path(), "other", "scm: { url: 'https://github.com/acme/other.git' }\nscript: echo\n");
    let sparky = Sparky::up(dir.path(), envs);
    Setup { _dir: dir, sparky, repo }
}

/// A GitHub push payload for `repo` (its clone URL spelled as `file://...git`).
fn github_push(repo: &Repo, reference: &str, after: &str) -> Value {
    json!({
        "ref": reference,
        "before": "0000000000000000000000000000000000000000",
        "after": after,
        "deleted": after.chars().all(|c| c == '0'),
        "repository": {
            "full_name": "acme/app",
            "clone_url": format!("file://{}.git", repo.path.display().to_string().trim_end_matches(".git")),
            "html_url": "https://example.invalid/acme/app",
        },
        "head_commit": { "id": after },
    })
}

async fn github(api: &Api, event: &str, delivery: &str, body: &Value, secret: Option<&str>) -> Reply {
    let body = body.to_string();
    let mut request = api
        .http
        .post(api.url("/hooks/github"))
        .header("content-type", "application/json")
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery);
    if let Some(secret) = secret {
        request =
            request.header("X-Hub-Signature-256", format!("sha256={}", hmac_hex(secret, body.as_bytes())));
    }
    api.send(request.body(body)).await
}

fn queued(reply: &Reply) -> Vec<(String, i64, bool)> {
    reply.json["queued"]
        .as_array()
        .map(|q| {
            q.iter()
                .map(|b| {
                    (
                        b["project"].as_str().unwrap_or_default().to_string(),
                        b["build_id"].as_i64().unwrap_or(0),
                        b["new"] == true,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn reason(reply: &Reply, project: &str) -> String {
    reply.json["skipped"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["project"] == project))
        .and_then(|s| s["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn build_count(api: &Api) -> usize {
    let mut total = 0;
    for project in ["app", "tags", "other"] {
        total += api.get(&format!("/api/v1/projects/{project}/builds")).await.json["builds"]
            .as_array()
            .map_or(0, Vec::len);
    }
    total
}

#[tokio::test]
async fn a_signed_github_push_builds_the_pushed_commit_once() {
    let s = setup(&[("SPARKY_WEBHOOK_SECRET", SECRET)]);
    let api = Api::new(&s.sparky.url);
    let sha = s.repo.commit("README", "second\n");

    let ping = github(&api, "ping", "d-0", &json!({"zen": "hi", "hook_id": 1}), Some(SECRET)).await;
    assert_eq!(ping.status, 200, "{}", ping.json);

    let push = github_push(&s.repo, "refs/heads/main", &sha);
    let reply = github(&api, "push", "d-1", &push, Some(SECRET)).await;
    assert_eq!(reply.status, 202, "{}", reply.json);
    let got = queued(&reply);
    assert_eq!(got.iter().map(|q| (q.0.as_str(), q.2)).collect::<Vec<_>>(), [("app", true)]);
    assert!(reason(&reply, "other").contains("another repository"), "{}", reply.json);
    assert!(reason(&reply, "tags").contains("does not match scm.branch"), "{}", reply.json);

    let triggers = api.get("/api/v1/projects/app").await.json["triggers"].clone();
    assert_eq!(triggers["webhooks"]["urls"]["github"], format!("{}/hooks/github", s.sparky.url));
    assert_eq!(
        (triggers["webhooks"]["secret_variable"].as_str(), triggers["webhooks"]["secret_set"].as_bool()),
        (Some("SPARKY_WEBHOOK_SECRET"), Some(true))
    );
    let build = api.wait_for(got[0].1, None, Duration::from_secs(20)).await;
    assert_eq!(build["status"], "succeeded", "{build}\n{}", api.log(got[0].1).await);
    assert_eq!((build["trigger"].as_str(), build["scm_sha"].as_str()), (Some("webhook"), Some(sha.as_str())));
    let log = api.log(got[0].1).await;
    assert!(log.contains(&format!("main {sha} {sha} second")), "the pushed commit is checked out: {log}");

    // GitHub redelivers with the same delivery id: nothing new.
    let again = github(&api, "push", "d-1", &push, Some(SECRET)).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json["redelivery"], true, "{}", again.json);
    assert_eq!(queued(&again).iter().map(|q| (q.1, q.2)).collect::<Vec<_>>(), [(got[0].1, false)]);
    assert_eq!(build_count(&api).await, 1);
}

#[tokio::test]
async fn bad_signatures_deletions_tags_and_garbage_queue_nothing() {
    let s = setup(&[("SPARKY_WEBHOOK_SECRET", SECRET)]);
    let api = Api::new(&s.sparky.url);
    let sha = s.repo.head();
    let push = github_push(&s.repo, "refs/heads/main", &sha);

    let wrong = github(&api, "push", "x-1", &push, Some("not-the-secret")).await;
    assert_eq!(wrong.status, 401, "{}", wrong.json);
    assert!(wrong.json["error"].as_str().unwrap_or_default().contains("X-Hub-Signature-256"));
    assert_eq!(github(&api, "push", "x-2", &push, None).await.status, 401);

    let deleted =
        github(&api, "push", "x-3", &github_push(&s.repo, "refs/heads/main", &"0".repeat(40)), Some(SECRET))
            .await;
    assert_eq!(deleted.status, 202);
    assert!(queued(&deleted).is_empty());
    assert!(reason(&deleted, "app").contains("deleted"), "{}", deleted.json);

    s.repo.tag("v1.0");
    let tag = github(&api, "push", "x-4", &github_push(&s.repo, "refs/tags/v1.0", &sha), Some(SECRET)).await;
    assert_eq!(queued(&tag).iter().map(|q| q.0.as_str()).collect::<Vec<_>>(), ["tags"], "{}", tag.json);
    assert!(reason(&tag, "app").contains("is a tag"), "{}", tag.json);

    let garbage = "{\"ref\": 42";
    let request = api
        .http
        .post(api.url("/hooks/github"))
        .header("X-GitHub-Event", "push")
        .header("X-Hub-Signature-256", format!("sha256={}", hmac_hex(SECRET, garbage.as_bytes())))
        .body(garbage);
    let reply = api.send(request).await;
    assert_eq!(reply.status, 400);
    assert!(reply.json["error"].as_str().unwrap_or_default().contains("not JSON"), "{}", reply.json);
    assert_eq!(build_count(&api).await, 1, "only the tag build");
}

#[tokio::test]
async fn gitlab_and_gitea_pushes_and_per_project_secrets() {
    let s = setup(&[("SPARKY_WEBHOOK_SECRET", SECRET)]);
    let api = Api::new(&s.sparky.url);
    let sha = s.repo.commit("README", "third\n");
    let url = format!("{}/", s.repo.path.display());

    let gitlab = json!({
        "object_kind": "push", "ref": "refs/heads/main", "before": "0".repeat(40), "after": sha, "checkout_sha": sha,
        "project": { "git_http_url": url, "git_ssh_url": "git@example.invalid:acme/app.git", "web_url": "https://example.invalid/acme/app" },
    });
    let send_gitlab = |token: &str, uuid: &str| {
        api.http
            .post(api.url("/hooks/gitlab"))
            .header("X-Gitlab-Event", "Push Hook")
            .header("X-Gitlab-Token", token)
            .header("X-Gitlab-Event-UUID", uuid)
            .json(&gitlab)
    };
    assert_eq!(api.send(send_gitlab("wrong", "g-1")).await.status, 401);
    let reply = api.send(send_gitlab(SECRET, "g-1")).await;
    assert_eq!(reply.status, 202, "{}", reply.json);
    let id = queued(&reply)[0].1;
    assert_eq!(api.wait_for(id, None, Duration::from_secs(20)).await["status"], "succeeded");
    assert_eq!(api.send(send_gitlab(SECRET, "g-1")).await.json["redelivery"], true);

    let gitea = json!({ "ref": "refs/heads/main", "before": sha, "after": sha, "repository": { "clone_url": url, "ssh_url": "git@example.invalid:acme/app.git" } }).to_string();
    let reply = api
        .send(
            api.http
                .post(api.url("/hooks/gitea"))
                .header("X-Gitea-Event", "push")
                .header("X-Gitea-Delivery", "e-1")
                .header("X-Gitea-Signature", hmac_hex(SECRET, gitea.as_bytes()))
                .body(gitea.clone()),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.json);
    assert_eq!(queued(&reply).len(), 1);
    let forgejo = api
        .send(
            api.http
                .post(api.url("/hooks/gitea"))
                .header("X-Forgejo-Event", "push")
                .header("X-Forgejo-Delivery", "e-2")
                .header("X-Forgejo-Signature", hmac_hex("nope", gitea.as_bytes()))
                .body(gitea),
        )
        .await;
    assert_eq!(forgejo.status, 401);
}

#[tokio::test]
async fn a_project_with_its_own_secret_and_no_secret_at_all() {
    let s = setup(&[]);
    let api = Api::new(&s.sparky.url);
    let push = github_push(&s.repo, "refs/heads/main", &s.repo.head());
    let refused = github(&api, "push", "n-1", &push, Some(SECRET)).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.json["error"].as_str().unwrap_or_default().contains("SPARKY_WEBHOOK_SECRET"),
        "{}",
        refused.json
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repo::init(&dir.path().join("own.git"));
    write_project(
        dir.path(),
        "own",
        &format!(
            "scm: {{ url: '{}', secret_env: SPARKY_WEBHOOK_SECRET_OWN }}\nscript: echo \"own ${{SPARKY_WEBHOOK_SECRET:-hidden}} ${{SPARKY_WEBHOOK_SECRET_OWN:-hidden}}\"\n",
            repo.path.display()
        ),
    );
    write_project(
        dir.path(),
        "shared",
        &format!("scm: {{ url: '{}' }}\nscript: echo shared\n", repo.path.display()),
    );
    let sparky = Sparky::up(
        dir.path(),
        &[("SPARKY_WEBHOOK_SECRET", SECRET), ("SPARKY_WEBHOOK_SECRET_OWN", "own-secret")],
    );
    let api = Api::new(&sparky.url);
    let push = github_push(&repo, "refs/heads/main", &repo.head());
    let reply = github(&api, "push", "o-1", &push, Some("own-secret")).await;
    assert_eq!(queued(&reply).iter().map(|q| q.0.as_str()).collect::<Vec<_>>(), ["own"], "{}", reply.json);
    let own = queued(&reply)[0].1;
    assert_eq!(api.wait_for(own, None, Duration::from_secs(20)).await["status"], "succeeded");
    assert!(
        api.log(own).await.ends_with("\nown hidden hidden\n"),
        "jobs never see webhook secrets: {}",
        api.log(own).await
    );
    assert!(reason(&reply, "shared").contains("secret"), "{}", reply.json);
    let reply = github(&api, "push", "o-2", &push, Some(SECRET)).await;
    assert_eq!(queued(&reply).iter().map(|q| q.0.as_str()).collect::<Vec<_>>(), ["shared"], "{}", reply.json);
}

#[tokio::test]
async fn checkouts_work_for_paths_and_file_urls_and_a_failed_one_fails_the_build() {
    let s = setup(&[("SPARKY_WEBHOOK_SECRET", SECRET)]);
    let api = Api::new(&s.sparky.url);
    // `tags` names the repository as a file:// URL; a manual build checks out the head
    // of the remote's default branch (its branch setting is a glob).
    let head = s.repo.head();
    let id = api.trigger("tags", json!({})).await;
    let build = api.wait_for(id, None, Duration::from_secs(20)).await;
    assert_eq!(build["status"], "succeeded", "{}", api.log(id).await);
    assert_eq!(build["scm_sha"].as_str(), Some(head.as_str()), "the checked-out commit is recorded");
    assert!(api.log(id).await.contains(&format!(" {head} first")), "{}", api.log(id).await);

    // A push naming a commit the repository doesn't have: the checkout fails the build.
    let missing = "1234567890123456789012345678901234567890";
    let reply =
        github(&api, "push", "c-1", &github_push(&s.repo, "refs/heads/main", missing), Some(SECRET)).await;
    let id = queued(&reply)[0].1;
    let build = api.wait_for(id, None, Duration::from_secs(20)).await;
    assert_eq!(build["status"], "failed");
    assert!(build["error"].as_str().unwrap_or_default().contains("the checkout of"), "{build}");
    let log = api.log(id).await;
    assert!(log.contains(&format!("[sparky] checking out {} at {missing}", s.repo.path.display())), "{log}");
    assert!(log.contains("[sparky] the checkout of"), "{log}");
}
