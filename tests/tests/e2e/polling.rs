//! SCM polling with `git ls-remote`, against local repositories the test commits to,
//! an unreachable one, and a server that accepts connections and never answers.

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use serde_json::Value;
use sparky_tests::{Api, Sparky, git::Repo, ping_request, write_project};

async fn builds(api: &Api, project: &str) -> Vec<Value> {
    api.get(&format!("/api/v1/projects/{project}/builds")).await.json["builds"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn polling(api: &Api, project: &str) -> Value {
    api.get(&format!("/api/v1/projects/{project}")).await.json["triggers"]["polling"].clone()
}

async fn tick(api: &Api, minute: &str) -> Duration {
    let started = Instant::now();
    let reply = api.send(ping_request(api, "/events/cron", minute, minute)).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    started.elapsed()
}

/// Waits until `project` has `n` builds and the newest is finished; returns it.
async fn nth_build(api: &Api, project: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = builds(api, project).await;
        if list.len() >= n {
            let id = list[0]["id"].as_i64().expect("id");
            return api.wait_for(id, None, Duration::from_secs(20)).await;
        }
        assert!(Instant::now() < deadline, "{project} never reached {n} builds");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn new_commits_are_built_once_and_bad_repositories_are_reported_without_delay() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repo::init(&dir.path().join("app.git"));
    let silent = TcpListener::bind("127.0.0.1:0").expect("listener");
    let silent_url = format!("http://127.0.0.1:{}/slow.git", silent.local_addr().expect("addr").port());
    write_project(
        dir.path(),
        "polled",
        &format!(
            "scm: {{ url: '{}', branch: main, poll: true }}\nscript: echo \"$SPARKY_TRIGGER $SCM_BRANCH $SCM_SHA $(git rev-parse HEAD)\"\n",
            repo.path.display()
        ),
    );
    write_project(
        dir.path(),
        "missing",
        &format!("scm: {{ url: '{}/missing.git', poll: true }}\nscript: echo\n", dir.path().display()),
    );
    write_project(dir.path(), "slow", &format!("scm: {{ url: '{silent_url}', poll: true }}\nscript: echo\n"));
    let sparky = Sparky::up(dir.path(), &[("SPARKY_SCM_TIMEOUT", "2s"), ("SPARKY_TICK_WINDOW", "off")]);
    let api = Api::new(&sparky.url);

    // The first sight of the branch builds its head, while the slow repository hangs.
    let answered = tick(&api, "2026-11-25T10:00:00Z").await;
    assert!(answered < Duration::from_millis(1000), "the tick waited for the polls: {answered:?}");
    let first = nth_build(&api, "polled", 1).await;
    let head = repo.head();
    assert_eq!((first["status"].as_str(), first["trigger"].as_str()), (Some("succeeded"), Some("scm")));
    let id = first["id"].as_i64().expect("id");
    let log = api.log(id).await;
    assert!(log.contains(&format!("[sparky] checked out {head}\n")), "the checkout is in the log: {log}");
    assert!(log.ends_with(&format!("\nscm main {head} {head}\n")), "{log}");

    // Nothing new, nothing built; a new commit on main, one build of it.
    tick(&api, "2026-11-25T10:01:00Z").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(builds(&api, "polled").await.len(), 1);
    let second = repo.commit("README", "two\n");
    tick(&api, "2026-11-25T10:02:00Z").await;
    let build = nth_build(&api, "polled", 2).await;
    assert_eq!(build["scm_sha"].as_str(), Some(second.as_str()));
    let log = api.log(build["id"].as_i64().expect("id")).await;
    assert!(log.ends_with(&format!("\nscm main {second} {second}\n")), "{log}");
    // A branch outside `scm.branch` builds nothing.
    repo.switch("feature");
    repo.commit("feature.txt", "f\n");
    tick(&api, "2026-11-25T10:03:00Z").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(builds(&api, "polled").await.len(), 2);
    let state = polling(&api, "polled").await;
    assert_eq!(state["heads"].as_array().map(Vec::len), Some(1), "{state}");
    assert_eq!(state["heads"][0]["sha"].as_str(), Some(second.as_str()));

    // The unreachable and the silent repositories show their last error and back off.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (missing, slow) = loop {
        let (missing, slow) = (polling(&api, "missing").await, polling(&api, "slow").await);
        if missing["last_error"].is_string() && slow["last_error"].is_string() {
            break (missing, slow);
        }
        assert!(Instant::now() < deadline, "no errors recorded: {missing} {slow}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(missing["last_error"].as_str().unwrap_or_default().contains("missing.git"), "{missing}");
    assert!(slow["last_error"].as_str().unwrap_or_default().contains("longer than"), "{slow}");
    assert!(missing["retry_at"].is_string(), "a retry is scheduled later: {missing}");
    let checked = missing["checked_at"].clone();
    tick(&api, "2026-11-25T10:04:00Z").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        polling(&api, "missing").await["checked_at"],
        checked,
        "backing off: not polled again at once"
    );
    let (_, page) = api.get_text("/projects/missing").await;
    assert!(page.contains("poll-error") && page.contains("missing.git"), "the project page shows the error");
    drop(silent);
}
