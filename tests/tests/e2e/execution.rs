//! How builds run: environment, output, exit codes, timeouts, cancel, limits, retention.

use std::time::{Duration, Instant};

use serde_json::json;
use sparky_tests::{Api, Sparky, alive, kill_groups, peak_overlap, read_pids, write_project};

#[tokio::test]
async fn jobs_get_their_environment_and_ordered_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(
        dir.path(),
        "env",
        "env: { GREETING: hi }\nvars: [{ name: WHO, default: nobody }]\nscript: |\n  \
         echo \"$SPARKY_PROJECT/$SPARKY_BUILD_ID/$SPARKY_TRIGGER $GREETING $WHO\"\n  \
         for i in 1 2 3; do echo out$i; echo err$i >&2; done\n  \
         test -d \"$SPARKY_ARTIFACTS\" && echo artifacts-ok\n  \
         test -z \"$(ls -A .)\" && echo fresh-dir\n  \
         curl -s -o /dev/null -w '%{http_code}\\n' \"$SPARKY_API/healthz\" || echo no-curl\n",
    );
    write_project(dir.path(), "fails", "script: |\n  echo partial\n  exit 42\n");
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);
    let id = api.trigger("env", json!({ "WHO": "you" })).await;
    let build = api.wait_for(id, None, Duration::from_secs(10)).await;
    assert_eq!(build["status"], "succeeded", "{build}\n{}", api.log(id).await);
    assert_eq!(
        api.log(id).await,
        format!("env/{id}/api hi you\nout1\nerr1\nout2\nerr2\nout3\nerr3\nartifacts-ok\nfresh-dir\n200\n")
    );
    let id = api.trigger("fails", json!({})).await;
    let build = api.wait_for(id, None, Duration::from_secs(10)).await;
    assert_eq!((build["status"].as_str(), build["exit_code"].as_i64()), (Some("failed"), Some(42)));
    assert_eq!(api.log(id).await, "partial\n");
}

#[tokio::test]
async fn timeout_and_cancel_kill_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pids = dir.path().join("pids");
    let script = |extra: &str| {
        format!(
            "{extra}script: |\n  sleep 300 &\n  echo $! >> {p}\n  echo $$ >> {p}\n  wait\n",
            p = pids.display()
        )
    };
    write_project(dir.path(), "slow", &script("timeout: 2s\n"));
    write_project(dir.path(), "long", &script(""));
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);

    let id = api.trigger("slow", json!({})).await;
    let build = api.wait_for(id, None, Duration::from_secs(10)).await;
    assert_eq!(build["status"], "timed_out", "{build}");
    let left: Vec<i32> = read_pids(&pids).into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "processes outlived the timeout: {left:?}");
    std::fs::remove_file(&pids).expect("reset pids");

    let id = api.trigger("long", json!({})).await;
    api.wait_for(id, Some("running"), Duration::from_secs(10)).await;
    while read_pids(&pids).len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    let reply = api.post(&format!("/api/v1/builds/{id}/cancel")).await;
    assert_eq!(reply.status, 202, "{}", reply.json);
    let group = read_pids(&pids);
    while group.iter().any(|p| alive(*p)) && asked.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gone_after = asked.elapsed();
    kill_groups(&group);
    assert!(gone_after < Duration::from_secs(2), "the process group took {gone_after:?} to go");
    let build = api.wait_for(id, None, Duration::from_secs(5)).await;
    assert_eq!(build["status"], "canceled");

    // A queued build is canceled before it starts.
    let blocker = api.trigger("long", json!({})).await;
    api.wait_for(blocker, Some("running"), Duration::from_secs(10)).await;
    let queued = api.trigger("long", json!({})).await;
    assert_eq!(api.post(&format!("/api/v1/builds/{queued}/cancel")).await.status, 202);
    let build = api.build(queued).await;
    assert_eq!((build["status"].as_str(), build["started_at"].as_str()), (Some("canceled"), None));
    api.post(&format!("/api/v1/builds/{blocker}/cancel")).await;
    api.wait_for(blocker, Some("canceled"), Duration::from_secs(5)).await;
    kill_groups(&read_pids(&pids));
}

#[tokio::test]
async fn concurrency_limits_hold_under_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spans = dir.path().join("spans");
    let job = |name: &str, concurrency: u32| {
        format!(
            "concurrency: {concurrency}\nscript: |\n  echo \"{name} start $(date +%s%N)\" >> {s}\n  sleep 0.2\n  \
             echo \"{name} end $(date +%s%N)\" >> {s}\n",
            s = spans.display()
        )
    };
    write_project(dir.path(), "a", &job("a", 2));
    write_project(dir.path(), "b", &job("b", 1));
    write_project(dir.path(), "c", &job("c", 3));
    let sparky = Sparky::up(dir.path(), &[("SPARKY_MAX_RUNNING", "4")]);
    let api = Api::new(&sparky.url);
    let mut clients = Vec::new();
    for client in 0..6 {
        let api = api.clone();
        clients.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..5 {
                let project = ["a", "b", "c"][(client + n) % 3];
                ids.push(api.trigger(project, json!({})).await);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for client in clients {
        ids.extend(client.await.expect("client"));
    }
    for id in &ids {
        let build = api.wait_for(*id, None, Duration::from_secs(60)).await;
        assert_eq!(build["status"], "succeeded", "{build}");
    }
    let (peak, per) = peak_overlap(&spans).expect("spans");
    assert!(peak <= 4, "global cap exceeded: {peak} at once");
    assert!(per["a"] <= 2 && per["b"] <= 1 && per["c"] <= 3, "project limits exceeded: {per:?}");
    assert!(peak >= 3, "builds of different projects should have run side by side (peak {peak})");
    let lines = std::fs::read_to_string(&spans).expect("spans").lines().count();
    assert_eq!(lines, 2 * ids.len(), "every build ran exactly once");
}

#[tokio::test]
async fn keep_builds_prunes_rows_logs_and_working_directories() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "app", "keep_builds: 3\nscript: echo kept > out.txt && echo done\n");
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let id = api.trigger("app", json!({})).await;
        api.wait_for(id, None, Duration::from_secs(10)).await;
        ids.push(id);
    }
    // Pruning runs right after a build is recorded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = api.get("/api/v1/projects/app/builds").await;
        let kept: Vec<i64> =
            page.json["builds"].as_array().expect("builds").iter().filter_map(|b| b["id"].as_i64()).collect();
        if kept == vec![ids[4], ids[3], ids[2]] {
            break;
        }
        assert!(Instant::now() < deadline, "kept {kept:?}, wanted the newest three of {ids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for old in &ids[..2] {
        assert_eq!(api.get(&format!("/api/v1/builds/{old}")).await.status, 404);
        assert_eq!(api.get_text(&format!("/builds/{old}/log")).await.0, 404);
        assert!(!dir.path().join(format!("work/{old}")).exists());
        assert!(!dir.path().join(format!("reports/projects/app/builds/{old}")).exists());
    }
    assert!(dir.path().join(format!("work/{}/workspace/out.txt", ids[4])).exists());
}
