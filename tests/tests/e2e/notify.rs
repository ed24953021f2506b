//! Notifications: a webhook receiver that checks the signature and the CloudEvent
//! headers, and a Slack-compatible incoming webhook, for a project that fails, is
//! fixed, and succeeds again; targets with `on: [success]`, `[always]` and the default
//! for pushes and a pull request of a real repository (a fix is per branch or request);
//! mail through a real SMTP server that requires STARTTLS and a login, down at first,
//! and one that refuses the login.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use serde_json::{Value, json};
use sparky_tests::{
    Api, Sparky, git::Repo, github_pull_payload, github_push_to_main, github_request, hmac_hex, serve_site,
    smtp::SmtpServer, write_project,
};

const KEY: &str = "notify-signing-key";

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, HeaderMap, String)>>>);

async fn receive(
    State(got): State<Received>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> &'static str {
    let body = String::from_utf8_lossy(&body).into_owned();
    got.0.lock().expect("lock").push((uri.path().to_string(), headers, body));
    "ok"
}

async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    let got = Received::default();
    let app = Router::new().route("/{*path}", post(receive)).with_state(got.clone());
    let (url, server) = serve_site(app).await;
    (url, got, server)
}

#[tokio::test]
async fn failures_and_fixes_reach_a_signed_webhook_and_every_end_reaches_slack() {
    let (url, got, server) = receiver().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = dir.path().join("fixed");
    std::fs::create_dir_all(dir.path().join("secrets")).expect("secrets");
    std::fs::write(dir.path().join("secrets/HOOK_KEY"), KEY).expect("secret");
    std::fs::write(dir.path().join("secrets/SLACK_URL"), format!("{url}/slack/T000/B000/XXXX"))
        .expect("secret");
    write_project(
        dir.path(),
        "flaky",
        &format!(
            "script: test -e {m}\nnotify:\n  - webhook: '{url}/hook'\n    secret: HOOK_KEY\n  - slack: SLACK_URL\n    on: [always]\n",
            m = marker.display()
        ),
    );
    let sparky = Sparky::up(dir.path(), &[("SPARKY_PUBLIC_URL", "https://ci.example.test")]);
    let api = Api::new(&sparky.url);
    let mut ids = Vec::new();
    for n in 0..3 {
        if n == 1 {
            std::fs::write(&marker, "").expect("fix it");
        }
        let id = api.trigger("flaky", json!({})).await;
        api.wait_for(id, None, Duration::from_secs(20)).await;
        let wanted = if n == 2 { 1 } else { 2 };
        deliveries_when(&api, id, |list| list.len() == wanted && list.iter().all(|d| d["state"] == "sent"))
            .await;
        ids.push(id);
    }
    let received = got.0.lock().expect("lock").clone();
    let hooks: Vec<&(String, HeaderMap, String)> = received.iter().filter(|(p, _, _)| p == "/hook").collect();
    let slack: Vec<&(String, HeaderMap, String)> =
        received.iter().filter(|(p, _, _)| p.starts_with("/slack/")).collect();
    assert_eq!(hooks.len(), 2, "the failure and the fix, not the success after: {received:?}");
    assert_eq!(slack.len(), 3, "every end: {received:?}");
    for ((_, headers, body), (id, outcome)) in hooks.iter().zip([(ids[0], "failure"), (ids[1], "fixed")]) {
        let header =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert_eq!(header("x-sparky-signature-256"), format!("sha256={}", hmac_hex(KEY, body.as_bytes())));
        assert_eq!(header("ce-specversion"), "1.0");
        assert_eq!(header("ce-type"), "dev.sparky.build.ended");
        assert_eq!(header("ce-source"), "/sparky/projects/flaky");
        assert!(!header("ce-id").is_empty() && !header("ce-time").is_empty());
        let doc: Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(
            (doc["outcome"].as_str(), doc["build"]["id"].as_i64()),
            (Some(outcome), Some(id)),
            "{doc}"
        );
        assert_eq!(doc["url"], format!("https://ci.example.test/builds/{id}"));
    }
    let texts: Vec<String> = slack
        .iter()
        .map(|(_, _, body)| {
            serde_json::from_str::<Value>(body).expect("JSON")["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        texts[0].contains("failure") && texts[1].contains("fixed") && texts[2].contains("success"),
        "{texts:?}"
    );
    assert!(
        texts[0].contains(&format!("<https://ci.example.test/builds/{}|#{}>", ids[0], ids[0])),
        "{texts:?}"
    );
    let page = api.get_text(&format!("/builds/{}", ids[1])).await.1;
    assert!(page.contains("webhook notified (fixed)"), "{page}");
    server.abort();
}

/// The build's deliveries once `done` holds for them (within 30 s).
async fn deliveries_when(api: &Api, id: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = api.build(id).await["deliveries"].as_array().cloned().unwrap_or_default();
        if done(&list) {
            return list;
        }
        assert!(std::time::Instant::now() < deadline, "build {id}: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_failure_is_mailed_over_starttls_with_a_login_once_the_server_is_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = SmtpServer::new(&dir.path().join("smtp"));
    // Started once to make its CA, then down while the build fails.
    server.start();
    server.stop();
    write_project(
        dir.path(),
        "mailed",
        "script: echo broken; exit 3\nnotify:\n  - email: [dev@example.com, ops@example.com]\n",
    );
    let mut env: Vec<(String, String)> = server.sparky_env(sparky_tests::smtp::PASSWORD);
    env.push(("SPARKY_PUBLIC_URL".into(), "https://ci.example.test".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sparky = Sparky::up(dir.path(), &env);
    let api = Api::new(&sparky.url);
    let id = api.trigger("mailed", json!({})).await;
    api.wait_for(id, Some("failed"), Duration::from_secs(20)).await;

    let waiting = deliveries_when(&api, id, |list| {
        list.len() == 1 && list[0]["state"] == "pending" && list[0]["attempts"].as_u64() >= Some(1)
    })
    .await;
    let outcome = waiting[0]["outcome"].as_str().unwrap_or_default();
    assert!(outcome.contains(&format!("could not send through 127.0.0.1:{}", server.port)), "{waiting:?}");
    assert!(server.mails().is_empty());

    server.start();
    let sent = deliveries_when(&api, id, |list| list.len() == 1 && list[0]["state"] == "sent").await;
    assert!(
        sent[0]["outcome"].as_str().unwrap_or_default().contains("email sent to dev@example.com"),
        "{sent:?}"
    );
    // Sent once: nothing more comes after it went through.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mails = server.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert!(mail.tls, "sent only after STARTTLS");
    assert_eq!(mail.login.as_deref(), Some(sparky_tests::smtp::USER));
    assert_eq!(mail.from, "ci@sparky.test");
    assert_eq!(mail.to, ["dev@example.com", "ops@example.com"]);
    assert!(mail.text.contains(&format!("Subject: [sparky] mailed #{id} failed")), "{}", mail.text);
    assert!(mail.text.contains(&format!("https://ci.example.test/builds/{id}")), "{}", mail.text);
    assert!(mail.text.contains("From: \"Sparky CI\" <ci@sparky.test>"), "{}", mail.text);
    let page = api.get_text(&format!("/builds/{id}")).await.1;
    assert!(page.contains("email sent to dev@example.com, ops@example.com"), "{page}");
}

#[tokio::test]
async fn a_refused_login_is_shown_on_the_build_page_and_not_tried_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = SmtpServer::new(&dir.path().join("smtp"));
    server.start();
    write_project(dir.path(), "mailed", "script: exit 1\nnotify:\n  - email: dev@example.com\n");
    let env = server.sparky_env("not-the-password");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sparky = Sparky::up(dir.path(), &env);
    let api = Api::new(&sparky.url);
    let id = api.trigger("mailed", json!({})).await;
    api.wait_for(id, Some("failed"), Duration::from_secs(20)).await;
    let failed = deliveries_when(&api, id, |list| list.len() == 1 && list[0]["state"] == "failed").await;
    assert_eq!(failed[0]["attempts"], 1, "a refusal is final: {failed:?}");
    let outcome = failed[0]["outcome"].as_str().unwrap_or_default();
    assert!(outcome.contains("the SMTP server refused the mail") && outcome.contains("535"), "{failed:?}");
    assert!(!outcome.contains("not-the-password"), "{failed:?}");
    let page = api.get_text(&format!("/builds/{id}")).await.1;
    assert!(page.contains("the SMTP server refused the mail"), "{page}");
    assert!(server.mails().is_empty());
}

const HOOK_SECRET: &str = "notify-hook-secret";

/// Pushes `sha` to `main` of the repository at `url`, as GitHub says it; the build queued.
async fn push(api: &Api, url: &str, sha: &str) -> i64 {
    github_push_to_main(api, HOOK_SECRET, url, sha, sha).await[0]
}

/// Opens (or adds `sha` to) pull request #4 of `url` from branch `feature`, as GitHub
/// says it; the build queued.
async fn pull(api: &Api, url: &str, action: &str, sha: &str) -> i64 {
    let body = github_pull_payload(url, action, 4, sha, "acme/app").to_string();
    let request = github_request(api, HOOK_SECRET, "pull_request", body).header("X-GitHub-Delivery", sha);
    let reply = api.send(request).await;
    assert_eq!(reply.status, 202, "{}", reply.json);
    reply.json["queued"][0]["build_id"].as_i64().expect("a build")
}

#[tokio::test]
async fn success_always_and_default_targets_hear_their_endings_and_a_fix_is_per_branch() {
    let (receiver_url, got, server) = receiver().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let host = Repo::bare(&dir.path().join("host.git"));
    let work = Repo::init(&dir.path().join("work"));
    work.push_to(&host.path, "main", "refs/heads/main");
    let url = host.path.display().to_string();
    write_project(
        dir.path(),
        "app",
        &format!(
            "scm: {{ url: '{url}', branch: main, pull_requests: true }}\n\
             script: |\n  case \"$(cat OUTCOME 2>/dev/null)\" in fail) exit 3;; hang) sleep 300;; esac\n\
             notify:\n  - webhook: '{receiver_url}/success'\n    on: [success]\n\
             \x20 - webhook: '{receiver_url}/always'\n    on: [always]\n\
             \x20 - webhook: '{receiver_url}/default'\n"
        ),
    );
    let sparky = Sparky::up(dir.path(), &[("SPARKY_WEBHOOK_SECRET", HOOK_SECRET)]);
    let api = Api::new(&sparky.url);
    let on_main = |text: &str| {
        let sha = work.commit("OUTCOME", text);
        work.push_to(&host.path, &sha, "refs/heads/main");
        sha
    };
    let on_request = |text: &str| {
        work.switch("feature");
        let sha = work.commit("OUTCOME", text);
        work.push_to(&host.path, &sha, "refs/pull/4/head");
        work.switch("main");
        sha
    };
    // Each build's deliveries all settled (how many: `heard` by its ending).
    let ends = |id: i64, heard: usize, status: &'static str| {
        let api = &api;
        async move {
            assert_eq!(api.wait_for(id, None, Duration::from_secs(20)).await["status"], status);
            deliveries_when(api, id, |list| list.len() == heard && list.iter().all(|d| d["state"] == "sent"))
                .await;
        }
    };

    let sha = on_main("ok 1\n");
    ends(push(&api, &url, &sha).await, 2, "succeeded").await;
    let sha = on_request("fail\n");
    ends(pull(&api, &url, "opened", &sha).await, 2, "failed").await;
    // The request failed, main did not: main's success is no fix.
    let sha = on_main("ok 2\n");
    ends(push(&api, &url, &sha).await, 2, "succeeded").await;
    let sha = on_main("hang\n");
    let hanging = push(&api, &url, &sha).await;
    api.wait_for(hanging, Some("running"), Duration::from_secs(20)).await;
    assert_eq!(api.post(&format!("/api/v1/builds/{hanging}/cancel")).await.status, 202);
    ends(hanging, 1, "canceled").await;
    let sha = on_request("ok 3\n");
    ends(pull(&api, &url, "synchronize", &sha).await, 3, "succeeded").await;

    let received = got.0.lock().expect("lock").clone();
    let heard = |path: &str| -> Vec<String> {
        received
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, _, body)| {
                let doc: Value = serde_json::from_str(body).expect("JSON");
                doc["outcome"].as_str().unwrap_or_default().to_string()
            })
            .collect()
    };
    assert_eq!(heard("/success"), ["success", "success", "fixed"], "successes, a fix among them");
    assert_eq!(heard("/always"), ["success", "failure", "success", "canceled", "fixed"], "every end");
    assert_eq!(heard("/default"), ["failure", "fixed"], "failures and fixes: the request's own fix");
    server.abort();
}
