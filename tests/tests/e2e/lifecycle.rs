//! `sparky up` from an empty root to a clean stop.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;
use sparky_tests::{Api, Sparky, alive, kill_groups, read_pids, write_project};

#[tokio::test]
async fn an_empty_root_gets_a_hello_project_that_greets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("state");
    let sparky = Sparky::up(&root, &[]);
    let api = Api::new(&sparky.url);
    let projects = api.get("/api/v1/projects").await;
    assert_eq!(projects.status, 200);
    assert_eq!(projects.json["projects"][0]["name"], "hello", "{}", projects.json);
    let id = api.trigger("hello", json!({ "NAME": "Ada" })).await;
    let build = api.wait_for(id, None, Duration::from_secs(10)).await;
    assert_eq!(build["status"], "succeeded", "{build}");
    assert_eq!(build["exit_code"], 0);
    let log = api.log(id).await;
    assert!(log.contains("Hello from Sparky!") && log.contains("greeting Ada"), "{log}");
    assert!(root.join("sparky.db").exists() && root.join("projects/hello/sparky.yaml").exists());
}

#[tokio::test]
async fn sigterm_cancels_running_builds_records_them_and_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pids = dir.path().join("pids");
    write_project(
        dir.path(),
        "slow",
        &format!(
            "script: |\n  sleep 300 &\n  echo $! >> {p}\n  echo $$ >> {p}\n  echo started\n  wait\n",
            p = pids.display()
        ),
    );
    let mut sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);
    let id = api.trigger("slow", json!({})).await;
    api.wait_for(id, Some("running"), Duration::from_secs(10)).await;
    while read_pids(&pids).len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queued = api.trigger("slow", json!({})).await;
    sparky.signal(Signal::SIGTERM);
    let status = sparky.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "exit status {status:?}\n{}", sparky.log());
    let left: Vec<i32> = read_pids(&pids).into_iter().filter(|p| alive(*p)).collect();
    kill_groups(&left);
    assert!(left.is_empty(), "job processes survived the shutdown: {left:?}");

    // A new process on the same root sees what the old one recorded.
    let again = Sparky::up(dir.path(), &[]);
    let api = Api::new(&again.url);
    let build = api.build(id).await;
    assert_eq!(build["status"], "canceled", "{build}");
    assert!(build["error"].as_str().unwrap_or_default().contains("shut down"), "{build}");
    assert!(api.log(id).await.starts_with("started\n"));
    // The build still queued at shutdown was kept, and runs now.
    let next = api.wait_for(queued, Some("running"), Duration::from_secs(10)).await;
    assert_eq!(next["id"], queued);
    api.post(&format!("/api/v1/builds/{queued}/cancel")).await;
    api.wait_for(queued, Some("canceled"), Duration::from_secs(5)).await;
    kill_groups(&read_pids(&pids));
}
