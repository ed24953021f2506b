//! Pull and merge requests from GitHub, GitLab and Gitea, with payloads shaped as the
//! hosts document them, for a real bare repository that holds the requests' heads
//! where each host keeps them (`refs/pull/N/head`, `refs/merge-requests/N/head`).

use std::time::Duration;

use serde_json::{Value, json};
use sparky_tests::{
    Api, Reply, Sparky, git::Repo, github_pull_payload, hmac_hex, unescape_html, write_project,
};

const SECRET: &str = "pull-hook-secret";
const OWN: &str = "own-secret-value-never-for-forks";
const PUBLIC: &str = "public-secret-value-for-everyone";

struct Setup {
    sparky: Sparky,
    work: Repo,
    host: Repo,
    _dir: tempfile::TempDir,
}

/// A host repository with `main`, a working copy, and projects on it: `app` builds
/// pull requests into main, `pushes-only` doesn't build them, `releases` builds those
/// into release branches only; `serial` (one build at a time) those into `serial`, and
/// `keep` (`cancel_previous: false`) those into `keep`.
fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = Repo::bare(&dir.path().join("host.git"));
    let work = Repo::init(&dir.path().join("work"));
    work.push_to(&host.path, "main", "refs/heads/main");
    std::fs::create_dir_all(dir.path().join("secrets")).expect("secrets");
    std::fs::write(dir.path().join("secrets/OWN_TOKEN"), OWN).expect("secret");
    std::fs::write(dir.path().join("secrets/PUBLIC_TOKEN"), PUBLIC).expect("secret");
    let url = host.path.display();
    write_project(
        dir.path(),
        "app",
        &format!(
            "scm: {{ url: '{url}', branch: main, pull_requests: true }}\n\
             secrets: [OWN_TOKEN, {{ name: PUBLIC_TOKEN, forks: true }}]\nconcurrency: 3\n\
             script: |\n  if [ \"$(cat FEATURE)\" = slow ]; then sleep 30; fi\n  \
             echo \"pr=$SPARKY_PULL_REQUEST src=$SCM_SOURCE_BRANCH dst=$SCM_TARGET_BRANCH sha=$SCM_SHA head=$(git rev-parse HEAD) feature=$(cat FEATURE)\"\n  \
             echo \"own=${{OWN_TOKEN:-none}} public=${{PUBLIC_TOKEN:-none}}\"\n"
        ),
    );
    write_project(
        dir.path(),
        "pushes-only",
        &format!("scm: {{ url: '{url}', branch: main }}\nscript: echo\n"),
    );
    write_project(
        dir.path(),
        "releases",
        &format!("scm: {{ url: '{url}', branch: 'release-*', pull_requests: true }}\nscript: echo\n"),
    );
    let slow = "script: |\n  case \"$(cat FEATURE)\" in slow*) sleep 30;; esac\n";
    write_project(
        dir.path(),
        "serial",
        &format!("scm: {{ url: '{url}', branch: serial, pull_requests: true }}\n{slow}"),
    );
    write_project(
        dir.path(),
        "keep",
        &format!(
            "scm: {{ url: '{url}', branch: keep, pull_requests: true, cancel_previous: false }}\n\
             concurrency: 2\n{slow}"
        ),
    );
    let sparky = Sparky::up(dir.path(), &[("SPARKY_WEBHOOK_SECRET", SECRET), ("SPARKY_MAX_RUNNING", "4")]);
    Setup { sparky, work, host, _dir: dir }
}

impl Setup {
    /// A commit on branch `feature` whose FEATURE file says `text`, published as the
    /// request's head at `head_ref` in the host repository.
    fn publish(&self, text: &str, head_ref: &str) -> String {
        self.work.switch("feature");
        let sha = self.work.commit("FEATURE", &format!("{text}\n"));
        self.work.push_to(&self.host.path, &sha, head_ref);
        self.work.switch("main");
        sha
    }

    fn url(&self) -> String {
        self.host.path.display().to_string()
    }
}

/// GitHub's (and Gitea's) pull_request payload for the setup's repository.
fn hub_payload(s: &Setup, action: &str, number: u64, sha: &str, head_repo: &str) -> Value {
    github_pull_payload(&s.url(), action, number, sha, head_repo)
}

/// The same, for a request into `branch`.
fn hub_payload_into(s: &Setup, branch: &str, action: &str, number: u64, sha: &str) -> Value {
    let mut payload = hub_payload(s, action, number, sha, "acme/app");
    payload["pull_request"]["base"]["ref"] = json!(branch);
    payload
}

async fn send(s: &Setup, host: &str, delivery: &str, body: &Value) -> Reply {
    let api = Api::new(&s.sparky.url);
    let body = body.to_string();
    let mut request =
        api.http.post(api.url(&format!("/hooks/{host}"))).header("content-type", "application/json");
    request = match host {
        "github" => request
            .header("X-GitHub-Event", "pull_request")
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", format!("sha256={}", hmac_hex(SECRET, body.as_bytes()))),
        "gitea" => request
            .header("X-Gitea-Event", "pull_request")
            .header("X-Gitea-Delivery", delivery)
            .header("X-Gitea-Signature", hmac_hex(SECRET, body.as_bytes())),
        _ => request
            .header("X-Gitlab-Event", "Merge Request Hook")
            .header("X-Gitlab-Event-UUID", delivery)
            .header("X-Gitlab-Token", SECRET),
    };
    let reply = api.send(request.body(body)).await;
    assert_eq!(reply.status, 202, "{}", reply.json);
    reply
}

fn queued(reply: &Reply) -> Vec<(String, i64)> {
    reply.json["queued"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| (q["project"].as_str().unwrap_or_default().to_string(), q["build_id"].as_i64().unwrap_or(0)))
        .collect()
}

fn skipped(reply: &Reply, project: &str) -> String {
    reply.json["skipped"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["project"] == project)
        .and_then(|s| s["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn built(s: &Setup, reply: &Reply) -> (Value, String) {
    let got = queued(reply);
    assert_eq!(got.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["app"], "{}", reply.json);
    succeeded(&Api::new(&s.sparky.url), got[0].1).await
}

/// Build `id` once it ended, succeeded, and its log.
async fn succeeded(api: &Api, id: i64) -> (Value, String) {
    let build = api.wait_for(id, None, Duration::from_secs(30)).await;
    let log = api.log(id).await;
    assert_eq!(build["status"], "succeeded", "{build}\n{log}");
    (build, log)
}

#[tokio::test]
async fn pull_requests_from_each_host_build_their_head_and_forks_get_no_private_secret() {
    let s = setup();
    let api = Api::new(&s.sparky.url);

    // GitHub, from the repository itself.
    let sha = s.publish("first", "refs/pull/7/head");
    let reply = send(&s, "github", "g-1", &hub_payload(&s, "opened", 7, &sha, "acme/app")).await;
    assert!(skipped(&reply, "pushes-only").contains("scm.pull_requests"), "{}", reply.json);
    assert!(skipped(&reply, "releases").contains("target branch main"), "{}", reply.json);
    let (build, log) = built(&s, &reply).await;
    assert!(log.contains(&format!("pr=7 src=feature dst=main sha={sha} head={sha} feature=first")), "{log}");
    assert!(log.contains("own=*** public=***"), "its own request gets every secret: {log}");
    assert_eq!(build["pull_request"]["number"], 7);
    assert_eq!(build["pull_request"]["fork"], false);
    let page = unescape_html(&api.get_text(&format!("/builds/{}", build["id"])).await.1);
    assert!(page.contains("href=\"https://git.example.test/acme/app/pull/7\""), "{page}");
    let history = unescape_html(&api.get_text("/projects/app").await.1);
    assert!(history.contains(">#7</a>"), "{history}");

    // GitHub, from a fork: no secret that isn't marked for forks.
    let sha = s.publish("forked", "refs/pull/8/head");
    let reply = send(&s, "github", "g-2", &hub_payload(&s, "opened", 8, &sha, "stranger/app")).await;
    let (build, log) = built(&s, &reply).await;
    assert!(log.contains("feature=forked") && log.contains("own=none public=***"), "{log}");
    assert_eq!(build["pull_request"]["fork"], true);
    assert!(!log.contains(OWN) && !log.contains(PUBLIC));

    // A label added builds nothing.
    let reply = send(&s, "github", "g-3", &hub_payload(&s, "labeled", 8, &sha, "stranger/app")).await;
    assert!(queued(&reply).is_empty() && skipped(&reply, "app").contains("labeled"), "{}", reply.json);

    // Gitea says "synchronized" for new commits.
    let sha = s.publish("gitea", "refs/pull/9/head");
    let reply = send(&s, "gitea", "t-1", &hub_payload(&s, "synchronized", 9, &sha, "acme/app")).await;
    let (_, log) = built(&s, &reply).await;
    assert!(log.contains(&format!("pr=9 src=feature dst=main sha={sha} head={sha} feature=gitea")), "{log}");

    // GitLab: a title edit builds nothing; new commits do.
    let sha = s.publish("gitlab", "refs/merge-requests/3/head");
    let mr = |oldrev: Option<&str>| {
        let mut attributes = json!({
            "iid": 3, "action": "update", "source_branch": "feature", "target_branch": "main",
            "source_project_id": 1, "target_project_id": 1,
            "url": "https://gitlab.example.test/acme/app/-/merge_requests/3",
            "last_commit": { "id": sha }, "target": { "git_http_url": s.url() },
        });
        if let Some(rev) = oldrev {
            attributes["oldrev"] = json!(rev);
        }
        json!({ "object_kind": "merge_request", "event_type": "merge_request",
                "project": { "git_http_url": s.url() }, "object_attributes": attributes })
    };
    let reply = send(&s, "gitlab", "l-1", &mr(None)).await;
    assert!(
        queued(&reply).is_empty() && skipped(&reply, "app").contains("without new commits"),
        "{}",
        reply.json
    );
    let reply = send(&s, "gitlab", "l-2", &mr(Some(&"1".repeat(40)))).await;
    let (build, log) = built(&s, &reply).await;
    assert!(log.contains(&format!("pr=3 src=feature dst=main sha={sha} head={sha} feature=gitlab")), "{log}");
    assert_eq!(build["pull_request"]["url"], "https://gitlab.example.test/acme/app/-/merge_requests/3");
}

#[tokio::test]
async fn a_new_commit_on_a_pull_request_cancels_its_older_build() {
    let s = setup();
    let api = Api::new(&s.sparky.url);
    let slow = s.publish("slow", "refs/pull/5/head");
    let first = send(&s, "github", "c-1", &hub_payload(&s, "opened", 5, &slow, "acme/app")).await;
    let first = queued(&first)[0].1;
    api.wait_for(first, Some("running"), Duration::from_secs(20)).await;
    let fixed = s.publish("fast", "refs/pull/5/head");
    let second = send(&s, "github", "c-2", &hub_payload(&s, "synchronize", 5, &fixed, "acme/app")).await;
    let (build, log) = built(&s, &second).await;
    assert!(log.contains("feature=fast"), "{log}");
    let older = api.wait_for(first, None, Duration::from_secs(10)).await;
    assert_eq!(older["status"], "canceled", "{older}");
    assert_eq!(build["pull_request"]["number"], 5);
    // Another request's builds are left alone.
    let other = s.publish("slow", "refs/pull/6/head");
    let third = send(&s, "github", "c-3", &hub_payload(&s, "opened", 6, &other, "acme/app")).await;
    let third = queued(&third)[0].1;
    api.wait_for(third, Some("running"), Duration::from_secs(20)).await;
    let again = s.publish("fast", "refs/pull/5/head");
    let fourth = send(&s, "github", "c-4", &hub_payload(&s, "synchronize", 5, &again, "acme/app")).await;
    built(&s, &fourth).await;
    assert_eq!(api.build(third).await["status"], "running", "pull request #6 is not #5");
}

#[tokio::test]
async fn a_rebuild_of_a_forks_pull_request_is_still_the_forks_request() {
    let s = setup();
    let api = Api::new(&s.sparky.url);
    // The fork's commit is only in the request's ref, as on a host.
    let sha = s.publish("forked", "refs/pull/8/head");
    let reply = send(&s, "github", "r-1", &hub_payload(&s, "opened", 8, &sha, "stranger/app")).await;
    let (first, _) = built(&s, &reply).await;

    let rebuilt = api.post(&format!("/api/v1/builds/{}/rebuild", first["id"])).await;
    assert_eq!(rebuilt.status, 201, "{}", rebuilt.json);
    let id = rebuilt.json["id"].as_i64().expect("build id");
    let (build, log) = succeeded(&api, id).await;
    assert_eq!(build["trigger"], "rebuild");
    assert!(log.contains("own=none public=***"), "a rebuild gets no secret withheld from forks: {log}");
    assert!(!log.contains(OWN), "{log}");
    assert!(
        log.contains(&format!("pr=8 src=feature dst=main sha={sha} head={sha} feature=forked")),
        "the rebuild checks out the request's head as a build of the request: {log}"
    );
    assert_eq!(
        (build["pull_request"]["number"].as_u64(), build["pull_request"]["fork"].as_bool()),
        (Some(8), Some(true))
    );
    let page = unescape_html(&api.get_text(&format!("/builds/{id}")).await.1);
    assert!(page.contains("href=\"https://git.example.test/acme/app/pull/8\""), "{page}");

    // The Run form that starts from the fork's build posts the same rebuild.
    let form = unescape_html(&api.get_text(&format!("/projects/app?from={id}")).await.1);
    assert!(form.contains(&format!("action=\"/api/v1/builds/{id}/rebuild\"")), "{form}");
    let browser =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let posted = browser
        .post(api.url(&format!("/api/v1/builds/{id}/rebuild")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("description=from+the+form")
        .send()
        .await
        .expect("form post");
    assert_eq!(posted.status(), 303);
    let location = posted.headers()["location"].to_str().expect("location");
    let again: i64 = location.trim_start_matches("/builds/").parse().expect("a build's page");
    let (build, log) = succeeded(&api, again).await;
    assert_eq!(build["pull_request"]["fork"].as_bool(), Some(true), "{build}");
    assert!(log.contains("pr=8 ") && log.contains("own=none public=***"), "{log}");
}

#[tokio::test]
async fn a_new_commit_cancels_an_older_build_still_queued_and_cancel_previous_false_keeps_it() {
    let s = setup();
    let api = Api::new(&s.sparky.url);
    let only = |reply: &Reply, project: &str| {
        let got = queued(reply);
        assert_eq!(got.len(), 1, "{}", reply.json);
        assert_eq!(got[0].0, project, "{}", reply.json);
        got[0].1
    };

    // `serial` runs one build at a time: request #11's holds it, #12's first one waits.
    let slow = s.publish("slow 11", "refs/pull/11/head");
    let reply = send(&s, "github", "q-1", &hub_payload_into(&s, "serial", "opened", 11, &slow)).await;
    let running = only(&reply, "serial");
    api.wait_for(running, Some("running"), Duration::from_secs(20)).await;
    let first = s.publish("slow 12", "refs/pull/12/head");
    let reply = send(&s, "github", "q-2", &hub_payload_into(&s, "serial", "opened", 12, &first)).await;
    let waiting = only(&reply, "serial");
    assert_eq!(api.build(waiting).await["status"], "queued");
    let fixed = s.publish("fast 12", "refs/pull/12/head");
    let reply = send(&s, "github", "q-3", &hub_payload_into(&s, "serial", "synchronize", 12, &fixed)).await;
    let newer = only(&reply, "serial");
    let older = api.wait_for(waiting, None, Duration::from_secs(5)).await;
    assert_eq!(older["status"], "canceled", "{older}");
    assert_eq!(older["started_at"], Value::Null, "it never ran: {older}");
    assert_eq!(api.build(running).await["status"], "running", "request #11 is not #12");
    // Once the project is free, the newer build runs.
    assert_eq!(api.post(&format!("/api/v1/builds/{running}/cancel")).await.status, 202);
    let build = api.wait_for(newer, None, Duration::from_secs(20)).await;
    assert_eq!(
        (build["status"].as_str(), build["scm_sha"].as_str()),
        (Some("succeeded"), Some(fixed.as_str()))
    );

    // `keep` says cancel_previous: false: the older build of the request runs on.
    let slow = s.publish("slow 13", "refs/pull/13/head");
    let reply = send(&s, "gitea", "k-1", &hub_payload_into(&s, "keep", "opened", 13, &slow)).await;
    let older = only(&reply, "keep");
    api.wait_for(older, Some("running"), Duration::from_secs(20)).await;
    let fixed = s.publish("fast 13", "refs/pull/13/head");
    let reply = send(&s, "gitea", "k-2", &hub_payload_into(&s, "keep", "synchronized", 13, &fixed)).await;
    let newer = only(&reply, "keep");
    assert_eq!(api.wait_for(newer, None, Duration::from_secs(20)).await["status"], "succeeded");
    let kept = api.build(older).await;
    assert_eq!(
        (kept["status"].as_str(), kept["cancel_requested"].as_bool()),
        (Some("running"), Some(false)),
        "{kept}"
    );
}
