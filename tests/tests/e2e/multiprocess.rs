//! The four functions as separate OS processes, as on Kubernetes: trigger, dispatch and
//! render-ui share one root (SQLite with the rollback journal); run has an empty root of
//! its own and reaches the state only through dispatch's runner API (the internal
//! token); reports go to a folder all of them see; HTTP between them.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use nix::sys::signal::Signal;
use serde_json::json;
use sparky_tests::{
    Api, Sparky, free_port, kill_groups, peak_overlap, ping_request, read_pids, write_project,
};

/// Four functions on four ports; `trigger` and `ui` talk to them.
pub(crate) struct Cluster {
    root: PathBuf,
    pub(crate) ports: [u16; 4],
    envs: Vec<(String, String)>,
    trigger: Sparky,
    dispatch: Sparky,
    run: Option<Sparky>,
    _ui: Sparky,
    /// run's own root, where it never sees `root`; last, so it goes after the processes.
    run_root: tempfile::TempDir,
}

pub(crate) const FUNCTIONS: [&str; 4] = ["trigger", "dispatch", "run", "render-ui"];

impl Cluster {
    pub(crate) fn start(root: &Path, extra: &[(&str, &str)]) -> Cluster {
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let mut envs: Vec<(String, String)> = vec![
            ("SPARKY_SQLITE_JOURNAL".into(), "delete".into()),
            ("SPARKY_DISPATCH_URL".into(), format!("http://127.0.0.1:{}", ports[1])),
            ("SPARKY_RUN_URL".into(), format!("http://127.0.0.1:{}", ports[2])),
            ("SPARKY_API_URL".into(), format!("http://127.0.0.1:{}", ports[0])),
            ("SPARKY_INTERNAL_TOKEN".into(), "functions-only".into()),
            ("SPARKY_REPORTS".into(), root.join("reports").display().to_string()),
        ];
        envs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let run_root = tempfile::tempdir().expect("run's root");
        let start = |i: usize| {
            let env: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let root = if FUNCTIONS[i] == "run" { run_root.path() } else { root };
            Sparky::serve(FUNCTIONS[i], ports[i], root, &env)
        };
        let (run, dispatch, trigger, ui) = (start(2), start(1), start(0), start(3));
        let root = root.to_path_buf();
        Cluster { root, ports, envs, trigger, dispatch, run: Some(run), _ui: ui, run_root }
    }

    fn restart_run(&mut self) {
        let env: Vec<(&str, &str)> = self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.run = Some(Sparky::serve("run", self.ports[2], self.run_root.path(), &env));
    }

    /// Restarts dispatch with `extra` settings on top of the cluster's.
    fn restart_dispatch(&mut self, extra: &[(&str, &str)]) {
        let mut env: Vec<(&str, &str)> = self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        env.extend_from_slice(extra);
        // The old one goes first: the new one takes its port.
        self.dispatch.signal(Signal::SIGKILL);
        self.dispatch.wait_exit(Duration::from_secs(5)).expect("dispatch stops");
        self.dispatch = Sparky::serve("dispatch", self.ports[1], &self.root, &env);
    }

    pub(crate) fn trigger_api(&self) -> Api {
        Api::new(&self.trigger.url)
    }

    pub(crate) fn ui_api(&self) -> Api {
        Api::new(&format!("http://127.0.0.1:{}", self.ports[3]))
    }

    /// What a PingSource sweep does: an event to dispatch.
    async fn sweep(&self) -> serde_json::Value {
        let api = Api::new(&self.dispatch.url);
        let request = ping_request(&api, "/events/dispatch", "2026-11-25T12:00:00Z", "sweep-1");
        let reply = api.send(request).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
        reply.json
    }
}

/// Triggers on trigger's port, reads on render-ui's: the two APIs of one deployment.
async fn trigger_and_wait(cluster: &Cluster, project: &str) -> serde_json::Value {
    let id = cluster.trigger_api().trigger(project, json!({})).await;
    cluster.ui_api().wait_for(id, None, Duration::from_secs(20)).await
}

#[tokio::test]
async fn builds_run_through_four_separate_processes() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "app", "script: |\n  echo \"built $SPARKY_BUILD_ID via $SPARKY_API\"\n");
    let cluster = Cluster::start(dir.path(), &[]);
    let build = trigger_and_wait(&cluster, "app").await;
    assert_eq!(
        build["status"],
        "succeeded",
        "{build}\nrun: {}",
        cluster.run.as_ref().map(Sparky::log).unwrap_or_default()
    );
    let id = build["id"].as_i64().expect("id");
    assert_eq!(
        cluster.ui_api().log(id).await,
        format!("built {id} via http://127.0.0.1:{}\n", cluster.ports[0])
    );
    // run worked from its own root: no database, no projects there.
    let run_root: Vec<_> = std::fs::read_dir(cluster.run_root.path())
        .expect("run's root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !run_root.iter().any(|name| name.starts_with("sparky.db") || name == "projects"),
        "run opened the state in its own root: {run_root:?}"
    );
    // Bytes 18 and 19 of an SQLite file are 1 for the rollback journal, 2 for WAL.
    let header = std::fs::read(dir.path().join("sparky.db")).expect("database file");
    assert_eq!(&header[18..20], &[1, 1], "the shared database must use the rollback journal");
    assert!(!dir.path().join("sparky.db-wal").exists());
}

#[tokio::test]
async fn a_killed_runner_loses_its_build_or_hands_it_back_for_a_retry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pids = dir.path().join("pids");
    let marker = dir.path().join("first-attempt");
    write_project(
        dir.path(),
        "doomed",
        &format!("script: |\n  echo $$ >> {p}\n  sleep 300\n", p = pids.display()),
    );
    write_project(
        dir.path(),
        "retry",
        &format!(
            "retries: 1\nscript: |\n  if [ ! -e {m} ]; then touch {m}; echo $$ >> {p}; sleep 300; fi\n  echo second attempt\n",
            m = marker.display(),
            p = pids.display()
        ),
    );
    let mut cluster = Cluster::start(dir.path(), &[("SPARKY_LEASE", "2s")]);
    let ui = cluster.ui_api();

    let doomed = cluster.trigger_api().trigger("doomed", json!({})).await;
    let retry = cluster.trigger_api().trigger("retry", json!({})).await;
    ui.wait_for(doomed, Some("running"), Duration::from_secs(10)).await;
    ui.wait_for(retry, Some("running"), Duration::from_secs(10)).await;
    while read_pids(&pids).len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(run) = &cluster.run {
        run.signal(Signal::SIGKILL);
    }
    cluster.run = None;
    kill_groups(&read_pids(&pids));
    assert!(cluster.sweep().await["swept"].as_array().is_some_and(Vec::is_empty), "leases are still valid");
    tokio::time::sleep(Duration::from_millis(2500)).await;

    cluster.restart_run();
    // What a PingSource does; no other clock runs here, so the builds change through
    // this sweep (or through a pass its own changes asked for).
    let swept = cluster.sweep().await;
    let lost = ui.build(doomed).await;
    let events = ui.get("/api/v1/events?after=0&limit=100").await.json;
    assert_eq!(lost["status"], "lost", "sweep: {swept}; events: {events}");
    assert!(lost["error"].as_str().unwrap_or_default().contains("runner vanished on attempt 1"), "{lost}");
    assert_eq!(
        (lost["attempts"][0]["reason"].as_str(), lost["attempts"][0]["outcome"].as_str()),
        (Some("runner_vanished"), Some("lost"))
    );
    let report = ui.get(&format!("/builds/{doomed}/report.json")).await;
    assert_eq!(report.status, 200, "a lost build has a report.json too");
    assert_eq!(
        (report.json["status"].as_str(), report.json["complete"].as_bool()),
        (Some("lost"), Some(false))
    );
    let retried = ui.wait_for(retry, None, Duration::from_secs(20)).await;
    assert_eq!(
        (retried["status"].as_str(), retried["attempt"].as_i64(), retried["retries_used"].as_i64()),
        (Some("succeeded"), Some(2), Some(1)),
        "{retried}"
    );
    let reasons: Vec<&str> =
        retried["attempts"].as_array().into_iter().flatten().filter_map(|a| a["reason"].as_str()).collect();
    assert_eq!(reasons, ["runner_vanished", "finished"], "{retried}");
    assert_eq!(ui.log(retry).await, "second attempt\n");
    // Its report.json lists both attempts, numbered and explained as the API does.
    let report = ui.get(&format!("/builds/{retry}/report.json")).await;
    assert_eq!(report.status, 200);
    let numbers: Vec<i64> = report.json["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["number"].as_i64())
        .collect();
    assert_eq!(numbers, [1, 2], "{}", report.json);
    assert_eq!(report.json["attempts"], retried["attempts"], "report.json: {}\nAPI: {retried}", report.json);
    assert_eq!(
        (
            report.json["status"].as_str(),
            report.json["attempt"].as_i64(),
            report.json["retries_used"].as_i64()
        ),
        (Some("succeeded"), Some(2), Some(1))
    );
}

#[tokio::test]
async fn concurrent_clients_through_several_trigger_and_dispatch_processes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spans = dir.path().join("spans");
    let job = |concurrency: u32| {
        format!(
            "concurrency: {concurrency}\nscript: |\n  echo \"$SPARKY_PROJECT start $(date +%s%N)\" >> {s}\n  \
             sleep 0.3\n  echo \"$SPARKY_PROJECT end $(date +%s%N)\" >> {s}\n  echo $SPARKY_BUILD_ID >> {s}.ids\n",
            s = spans.display()
        )
    };
    write_project(dir.path(), "a", &job(2));
    write_project(dir.path(), "b", &job(1));
    let cluster = Cluster::start(dir.path(), &[("SPARKY_MAX_RUNNING", "3")]);
    // A second trigger and a second dispatch on the same root, as two pods each.
    let env: Vec<(&str, &str)> = cluster.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let second_dispatch_port = free_port();
    let second_dispatch = Sparky::serve("dispatch", second_dispatch_port, dir.path(), &env);
    let mut env2 = env.clone();
    let second_dispatch_url = format!("http://127.0.0.1:{second_dispatch_port}");
    env2.retain(|(k, _)| *k != "SPARKY_DISPATCH_URL");
    env2.push(("SPARKY_DISPATCH_URL", &second_dispatch_url));
    let second_trigger = Sparky::serve("trigger", free_port(), dir.path(), &env2);
    let triggers = [cluster.trigger_api(), Api::new(&second_trigger.url)];

    let mut clients = Vec::new();
    for client in 0..8 {
        let api = triggers[client % 2].clone();
        clients.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..3 {
                ids.push(api.trigger(["a", "b"][(client + n) % 2], json!({})).await);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for client in clients {
        ids.extend(client.await.expect("client"));
    }
    let ui = cluster.ui_api();
    for id in &ids {
        let build = ui.wait_for(*id, None, Duration::from_secs(60)).await;
        assert_eq!(build["status"], "succeeded", "{build}");
    }
    let (peak, per) = peak_overlap(&spans).expect("spans");
    assert!(peak <= 3 && per["a"] <= 2 && per["b"] <= 1, "limits exceeded: peak {peak}, {per:?}");
    let mut ran: Vec<i64> = read_pids(&dir.path().join("spans.ids")).into_iter().map(i64::from).collect();
    ran.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(ran, expected, "every build ran exactly once");
    drop(second_dispatch);
}

/// A server that accepts connections and never answers: a delivery that is lost.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

/// `serve trigger` with `SPARKY_SELF_TICK` reads `.triggers/` on its own clock (no
/// PingSource posts `/events/cron` here). Its minute ticker, started beside the inbox
/// reader, fires on wall-clock minutes: `cron::sparky_up_ticks_by_itself_every_minute`
/// waits for one; this test doesn't wait a minute more.
#[tokio::test]
async fn four_processes_with_self_tick_pick_up_a_triggers_file_by_themselves() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "app", "script: echo \"$SPARKY_TRIGGER build $SPARKY_BUILD_ID\"\n");
    let cluster = Cluster::start(dir.path(), &[("SPARKY_SELF_TICK", "true")]);
    let ui = cluster.ui_api();
    let inbox = dir.path().join("projects/app/.triggers");
    std::fs::create_dir_all(&inbox).expect("inbox");
    std::fs::write(inbox.join("request.json.tmp"), r#"{"description": "dropped in"}"#).expect("write");
    std::fs::rename(inbox.join("request.json.tmp"), inbox.join("request.json")).expect("rename");

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let build = loop {
        let history = ui.get("/api/v1/projects/app/builds").await.json;
        if let Some(build) = history["builds"].as_array().and_then(|b| b.first()) {
            break build.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the file queued nothing within 5 s: {}",
            cluster.trigger.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (build["trigger"].as_str(), build["description"].as_str()),
        (Some("file"), Some("dropped in"))
    );
    let id = build["id"].as_i64().expect("id");
    ui.wait_for(id, Some("succeeded"), Duration::from_secs(20)).await;
    assert_eq!(ui.log(id).await, format!("file build {id}\n"));
    assert!(!inbox.join("request.json").exists(), "the file is removed once queued");
}

#[tokio::test]
async fn four_processes_sweep_by_themselves_and_a_build_that_never_started_is_not_lost() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "app", "script: echo built\n");
    let pids = dir.path().join("pids");
    write_project(
        dir.path(),
        "doomed",
        &format!("script: |\n  echo $$ >> {}\n  sleep 300\n", pids.display()),
    );
    let (hole, hole_task) = black_hole().await;
    // Nothing outside posts /events/dispatch here: the processes tick themselves.
    let mut cluster = Cluster::start(
        dir.path(),
        &[("SPARKY_LEASE", "1s"), ("SPARKY_SELF_TICK", "true"), ("SPARKY_RUN_URL", &hole)],
    );
    let ui = cluster.ui_api();

    // Sent to a runner that never takes it (retries: 0): back in the queue each time
    // its lease runs out, never `lost`, no retry used.
    let id = cluster.trigger_api().trigger("app", json!({})).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let build = loop {
        let build = ui.build(id).await;
        assert_ne!(build["status"], "lost", "{build}");
        if build["attempts"].as_array().is_some_and(|a| a.len() >= 2) || std::time::Instant::now() > deadline
        {
            break build;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let attempts = build["attempts"].as_array().cloned().unwrap_or_default();
    assert!(attempts.len() >= 2, "the dispatch sweeps by itself: {build}");
    assert_eq!(
        (attempts[0]["reason"].as_str(), attempts[0]["outcome"].as_str()),
        (Some("delivery_lost"), Some("queued"))
    );
    assert_eq!(attempts[0]["started_at"], serde_json::Value::Null);

    // With run reachable, the same build runs, with its earlier attempts on record.
    let run_url = format!("http://127.0.0.1:{}", cluster.ports[2]);
    cluster.restart_dispatch(&[("SPARKY_RUN_URL", &run_url)]);
    hole_task.abort();
    let done = ui.wait_for(id, None, Duration::from_secs(20)).await;
    assert_eq!(
        (done["status"].as_str(), done["retries_used"].as_i64()),
        (Some("succeeded"), Some(0)),
        "{done}"
    );
    let reasons: Vec<&str> =
        done["attempts"].as_array().into_iter().flatten().filter_map(|a| a["reason"].as_str()).collect();
    assert_eq!(reasons.last(), Some(&"finished"), "{done}");
    assert!(
        reasons[..reasons.len() - 1].iter().all(|r| *r == "delivery_lost" || *r == "delivery_failed"),
        "{reasons:?}"
    );
    assert_eq!(done["attempt"].as_u64(), Some(reasons.len() as u64));

    // A runner killed outright: its build ends `lost` with nobody sweeping from outside.
    let doomed = cluster.trigger_api().trigger("doomed", json!({})).await;
    ui.wait_for(doomed, Some("running"), Duration::from_secs(10)).await;
    while read_pids(&pids).is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(run) = &cluster.run {
        run.signal(Signal::SIGKILL);
    }
    cluster.run = None;
    kill_groups(&read_pids(&pids));
    let lost = ui.wait_for(doomed, None, Duration::from_secs(20)).await;
    assert_eq!(lost["status"], "lost", "{lost}");
    assert_eq!(lost["attempts"][0]["reason"], "runner_vanished");
    // The sweep that ended it stores its report.json right after.
    let mut report = ui.get(&format!("/builds/{doomed}/report.json")).await;
    for _ in 0..50 {
        if report.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        report = ui.get(&format!("/builds/{doomed}/report.json")).await;
    }
    assert_eq!(report.json["status"], "lost", "the lost build's report.json");

    // The events API saw every change, in order.
    let events = ui.get("/api/v1/events?limit=1000").await.json;
    let of = |build: i64| -> Vec<String> {
        events["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["build_id"] == build)
            .map(|e| e["to"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(of(doomed), ["queued", "dispatched", "running", "lost"]);
    let app = of(id);
    assert_eq!(app.first().map(String::as_str), Some("queued"));
    assert_eq!(app.last().map(String::as_str), Some("succeeded"));
}
