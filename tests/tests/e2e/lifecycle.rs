//! `sparky up` from an empty root to a clean stop.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::json;
use sparky_tests::{Api, Sparky, alive, descendants, kill_groups, read_pids, write_project};

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

/// In a container `sparky` is PID 1: every process a job orphans becomes its child.
/// It must reap them, and still stop cleanly on the SIGTERM a pod gets.
#[tokio::test]
async fn as_pid_1_sparky_reaps_orphaned_job_processes_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(
        dir.path(),
        "orphans",
        "script: |\n  for i in 1 2 3; do ( sleep 0.2 & ); done\n  echo left three\n",
    );
    // A new pid namespace, as a container has, with sparky as its first process.
    let mut command = std::process::Command::new("unshare");
    command
        .args(["--pid", "--fork", "--kill-child"])
        .arg(sparky_tests::sparky_bin())
        .args(["up", "--listen", "127.0.0.1:0", "--root"])
        .arg(dir.path())
        .env_remove("SPARKY_API_TOKEN")
        .env_remove("SPARKY_ROOT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut sparky = Sparky::spawn(command);
    let api = Api::new(&sparky.url);
    for _ in 0..3 {
        let id = api.trigger("orphans", json!({})).await;
        let build = api.wait_for(id, None, Duration::from_secs(10)).await;
        assert_eq!(build["status"], "succeeded", "{build}");
    }
    let unshare = sparky.pid().as_raw();
    let init =
        descendants(unshare).iter().find(|p| p.1 == unshare).map(|p| p.0).expect("sparky under unshare");
    // The orphans sleep 0.2 s; give them time to end and be reaped.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut left = descendants(init);
    while left.len() > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = descendants(init);
    }
    let zombies: Vec<_> = left.iter().filter(|p| p.2 == 'Z').collect();
    assert!(zombies.is_empty(), "orphaned job processes were never reaped: {zombies:?}");
    assert_eq!(left.len(), 1, "only sparky itself should be left under its init: {left:?}");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(init), Signal::SIGTERM).expect("signal sparky");
    let status = sparky.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "exit status {status:?}\n{}", sparky.log());
    assert!(sparky.log().contains("shutting down"), "{}", sparky.log());
    assert!(!sparky.log().contains('\u{1b}'), "a log that is not a terminal has no colour codes");
}
