//! The `.triggers/` file protocol.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::json;
use sparky_tests::{Api, Sparky, free_port, ping_request, write_project};

fn inbox(root: &Path, project: &str) -> std::path::PathBuf {
    let dir = root.join("projects").join(project).join(".triggers");
    std::fs::create_dir_all(&dir).expect("inbox");
    dir
}

/// Waits for the project's history to hold `n` builds; returns them newest first.
async fn wait_builds(api: &Api, project: &str, n: usize, limit: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let builds = api.get(&format!("/api/v1/projects/{project}/builds")).await.json["builds"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if builds.len() >= n {
            return builds;
        }
        assert!(Instant::now() < deadline, "{project}: {} builds after {limit:?}, wanted {n}", builds.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn files_become_builds_within_a_second_and_bad_ones_are_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(
        dir.path(),
        "app",
        "vars: [{ name: target, type: select, values: [staging, prod] }]\nscript: echo \"target=$target\"\n",
    );
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);
    let inbox = inbox(dir.path(), "app");

    // Written under a temporary name, then renamed: never read half-way.
    std::fs::write(
        inbox.join("deploy.json.tmp"),
        r#"{"description": "from a file", "params": {"target": "prod"}}"#,
    )
    .expect("write");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(inbox.join("deploy.json.tmp").exists(), "a .tmp file is left alone");
    let dropped = Instant::now();
    std::fs::rename(inbox.join("deploy.json.tmp"), inbox.join("deploy.json")).expect("rename");
    let builds = wait_builds(&api, "app", 1, Duration::from_secs(5)).await;
    let picked_up = dropped.elapsed();
    assert!(picked_up < Duration::from_millis(1500), "picked up after {picked_up:?}");
    let build = &builds[0];
    assert_eq!(
        (build["trigger"].as_str(), build["description"].as_str()),
        (Some("file"), Some("from a file"))
    );
    assert_eq!(build["params"], json!({"target": "prod"}));
    let id = build["id"].as_i64().expect("id");
    api.wait_for(id, Some("succeeded"), Duration::from_secs(10)).await;
    assert_eq!(api.log(id).await, "target=prod\n");
    assert!(!inbox.join("deploy.json").exists(), "the file is removed once queued");

    // YAML works too; an empty file is a build with defaults.
    std::fs::write(inbox.join("nightly.yaml"), "params:\n  target: staging\n").expect("write");
    std::fs::write(inbox.join("empty"), "").expect("write");
    let builds = wait_builds(&api, "app", 3, Duration::from_secs(5)).await;
    let mut params: Vec<String> =
        builds[..2].iter().map(|b| b["params"]["target"].as_str().unwrap_or_default().to_string()).collect();
    params.sort();
    assert_eq!(params, ["staging", "staging"]);

    // Unusable files move to rejected/ beside a note saying why.
    std::fs::write(inbox.join("bad.json"), r#"{"params": {"target": "moon"}}"#).expect("write");
    std::fs::write(inbox.join("worse.json"), "{not json").expect("write");
    let rejected = inbox.join("rejected");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(rejected.join("bad.json.error").exists() && rejected.join("worse.json.error").exists()) {
        assert!(Instant::now() < deadline, "files were not rejected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let why = std::fs::read_to_string(rejected.join("bad.json.error")).expect("error note");
    assert!(why.contains("params.target") && why.contains("moon"), "{why}");
    assert!(rejected.join("bad.json").exists() && !inbox.join("bad.json").exists());
    assert!(
        std::fs::read_to_string(rejected.join("worse.json.error"))
            .expect("note")
            .contains("not a trigger file")
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        wait_builds(&api, "app", 3, Duration::from_secs(1)).await.len(),
        3,
        "rejected files queue nothing"
    );
}

#[tokio::test]
async fn several_processes_reading_one_inbox_queue_each_file_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "app", "script: echo\n");
    let env = [("SPARKY_SQLITE_JOURNAL", "delete"), ("SPARKY_TICK_WINDOW", "off")];
    let triggers: Vec<_> = (0..3).map(|_| Sparky::serve("trigger", free_port(), dir.path(), &env)).collect();
    let ui = Sparky::serve("render-ui", free_port(), dir.path(), &env);
    let inbox = inbox(dir.path(), "app");
    for n in 0..20 {
        std::fs::write(inbox.join(format!("f{n}.json")), format!("{{\"description\": \"file {n}\"}}"))
            .expect("write");
    }
    let mut ticks = Vec::new();
    for round in 0..4 {
        for (i, trigger) in triggers.iter().enumerate() {
            let api = Api::new(&trigger.url);
            ticks.push(tokio::spawn(async move {
                api.send(ping_request(&api, "/events/cron", "2026-11-25T12:00:00Z", &format!("{round}-{i}")))
                    .await
            }));
        }
    }
    let mut reported = 0;
    for tick in ticks {
        let reply = tick.await.expect("tick");
        assert_eq!(reply.status, 200, "{}", reply.json);
        reported += reply.json["files"].as_array().map_or(0, Vec::len);
    }
    let api = Api::new(&ui.url);
    let builds = api.get("/api/v1/projects/app/builds?limit=100").await.json["builds"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut descriptions: Vec<String> =
        builds.iter().filter_map(|b| b["description"].as_str().map(str::to_string)).collect();
    descriptions.sort();
    descriptions.dedup();
    assert_eq!((builds.len(), descriptions.len(), reported), (20, 20, 20), "each file exactly once");
    assert_eq!(std::fs::read_dir(&inbox).expect("inbox").count(), 0, "all files removed");
}
