//! `/metrics` as people use it: a real Prometheus server scrapes `sparky up` and the
//! four functions as separate processes every second, and PromQL over its HTTP API
//! finds the builds each process counted, how long they took, the live builds every
//! process reports alike, the requests by route, the notifications sent and the
//! busy-database retries; and `/healthz` as a probe sees it when the database can't be
//! read.

use std::time::Duration;

use serde_json::json;
use sparky_tests::{
    Api, Sparky,
    prometheus::{Job, Prometheus, Sample},
    serve_site, write_project,
};

use super::multiprocess::{Cluster, FUNCTIONS};

/// The projects; a failure of `bad` is notified to the webhook at `hook`.
fn projects(root: &std::path::Path, hook: &str) {
    write_project(root, "ok", "script: echo fine\n");
    write_project(root, "bad", &format!("script: exit 3\nnotify:\n  - webhook: '{hook}'\n"));
    write_project(root, "slow", "script: sleep 60\n");
}

/// A webhook receiver that answers 200 to anything; its URL.
async fn webhook_receiver() -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    let (url, server) = serve_site(app).await;
    (format!("{url}/hook"), server)
}

/// `host:port` of a URL `http://host:port`.
fn address(url: &str) -> String {
    url.trim_start_matches("http://").trim_end_matches('/').to_string()
}

/// The one value of an answer.
fn one(samples: &[Sample]) -> f64 {
    assert_eq!(samples.len(), 1, "{samples:?}");
    samples[0].value
}

async fn run_all(api: &Api, ui: &Api, builds: &[&str]) {
    let mut ids = Vec::new();
    for project in builds {
        ids.push(api.trigger(project, json!({})).await);
    }
    for id in ids {
        ui.wait_for(id, None, Duration::from_secs(20)).await;
    }
}

#[tokio::test]
async fn prometheus_scrapes_every_process_and_finds_the_builds() {
    let up_root = tempfile::tempdir().expect("temp dir");
    let cluster_root = tempfile::tempdir().expect("temp dir");
    let (hook, receiver) = webhook_receiver().await;
    projects(up_root.path(), &hook);
    projects(cluster_root.path(), &hook);
    let up = Sparky::up(up_root.path(), &[]);
    let cluster = Cluster::start(cluster_root.path(), &[]);
    let mut functions = Vec::new();
    for (function, port) in FUNCTIONS.iter().zip(cluster.ports) {
        functions.push((format!("127.0.0.1:{port}"), vec![("function".to_string(), function.to_string())]));
    }
    let prometheus = Prometheus::start(&[
        Job { name: "up".into(), targets: vec![(address(&up.url), Vec::new())] },
        Job { name: "functions".into(), targets: functions },
    ]);
    prometheus.ready().await;

    let up_api = Api::new(&up.url);
    run_all(&up_api, &up_api, &["ok", "ok", "bad"]).await;
    run_all(&cluster.trigger_api(), &cluster.ui_api(), &["ok", "bad"]).await;
    // One build left running: every process that has the store reports it (trigger,
    // dispatch and render-ui: run has none, it asks dispatch).
    let slow = cluster.trigger_api().trigger("slow", json!({})).await;
    cluster.ui_api().wait_for(slow, Some("running"), Duration::from_secs(20)).await;

    prometheus.until_value(r#"count(up == 1)"#, 5.0).await;
    prometheus.until_value(r#"count(sparky_builds{job="functions",status="running"} == 1)"#, 3.0).await;
    let from_run = prometheus.query(r#"sparky_builds{function="run"}"#).await;
    assert!(from_run.is_empty(), "run holds no store, so it reports no live builds: {from_run:?}");
    prometheus.until_value(r#"sum(sparky_project_builds{function="render-ui",project="slow"})"#, 1.0).await;
    let canceled = cluster.trigger_api().post(&format!("/api/v1/builds/{slow}/cancel")).await;
    assert!(canceled.status < 300, "{}", canceled.json);
    cluster.ui_api().wait_for(slow, None, Duration::from_secs(20)).await;

    prometheus.until_value(r#"sum(sparky_builds_finished_total{status="failed"})"#, 2.0).await;
    prometheus.until_value(r#"sum(sparky_builds_finished_total{job="up",status="succeeded"})"#, 2.0).await;
    // Each function counts what it records: trigger queues; dispatch records starts and
    // ends for run, which holds no store.
    prometheus.until_value(r#"sum(sparky_builds_queued_total{function="trigger"})"#, 3.0).await;
    prometheus.until_value(r#"sum(sparky_builds_started_total{function="dispatch"})"#, 3.0).await;
    prometheus
        .until_value(
            r#"sum(sparky_builds_finished_total{function="dispatch",status="canceled",project="slow"})"#,
            1.0,
        )
        .await;
    let others = prometheus
        .query(r#"sum(sparky_builds_queued_total{job="functions",function!="trigger"}) or sum(sparky_builds_started_total{job="functions",function!="dispatch"})"#)
        .await;
    assert!(others.is_empty(), "only trigger queues and only dispatch records starts: {others:?}");
    prometheus.until_value(r#"sum(sparky_builds{job="functions",status="running"})"#, 0.0).await;

    // Durations: the jobs are trivial, the canceled one ran a moment.
    let median = one(&prometheus
        .query(r#"histogram_quantile(0.5, sum by (le) (sparky_build_duration_seconds_bucket{job="up"}))"#)
        .await);
    assert!(median > 0.0 && median <= 5.0, "median build took {median} s");
    let waits = prometheus.query(r#"sum(sparky_build_queue_wait_seconds_count)"#).await;
    assert_eq!(one(&waits), 6.0, "a wait for each build that started");

    // Requests by route pattern, never by path.
    let route = r#"route="/api/v1/projects/{project}/builds",method="POST",status="201""#;
    prometheus.until_value(&format!("sum(sparky_http_requests_total{{job=\"up\",{route}}})"), 3.0).await;
    prometheus
        .until_value(&format!("sum(sparky_http_requests_total{{function=\"trigger\",{route}}})"), 3.0)
        .await;
    let by_path = prometheus.query(r#"sparky_http_requests_total{route=~".*/[0-9]+(/.*)?"}"#).await;
    assert!(by_path.is_empty(), "a route label holds a path: {by_path:?}");
    // Each process times its scrapes: a scrape is counted once it has been answered, so
    // the count shows from a process's second scrape on.
    prometheus
        .until_value(r#"count(sparky_http_request_duration_seconds_count{route="/metrics"} > 0)"#, 5.0)
        .await;

    // Deliveries by kind, host and outcome, counted where they are sent: by `sparky up`,
    // and in the cluster by dispatch, which drains the outbox. Each failure of `bad`
    // was notified once.
    let sent = r#"kind="webhook",host="127.0.0.1",outcome="sent""#;
    prometheus.until_value(&format!("sum(sparky_deliveries_total{{job=\"up\",{sent}}})"), 1.0).await;
    prometheus
        .until_value(&format!("sum(sparky_deliveries_total{{function=\"dispatch\",{sent}}})"), 1.0)
        .await;
    let elsewhere =
        prometheus.query(r#"sparky_deliveries_total{job="functions",function!="dispatch"}"#).await;
    assert!(elsewhere.is_empty(), "only dispatch delivers: {elsewhere:?}");
    receiver.abort();
    // A runner's writes retried on a busy database, by write: at 0 from the start in
    // every process, none here.
    for write in ["start", "finish", "hand back"] {
        let series = format!(r#"sparky_store_busy_retries_total{{write="{write}"}}"#);
        prometheus.until_value(&format!("count({series})"), 5.0).await;
        assert_eq!(one(&prometheus.query(&format!("sum({series})")).await), 0.0, "{write}");
    }

    // /healthz: down while the database can't be read (a folder in its place), up again
    // once it is back.
    let db = up_root.path().join("sparky.db");
    let kept = up_root.path().join("kept");
    std::fs::create_dir(&kept).expect("a folder");
    let files = ["sparky.db", "sparky.db-wal", "sparky.db-shm"];
    for name in files {
        if up_root.path().join(name).exists() {
            std::fs::rename(up_root.path().join(name), kept.join(name)).expect("move away");
        }
    }
    std::fs::create_dir(&db).expect("a folder in its place");
    let (status, body) = up_api.get_text("/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("the database can't be read"), "{body}");
    std::fs::remove_dir(&db).expect("remove the folder");
    for name in files {
        if kept.join(name).exists() {
            std::fs::rename(kept.join(name), up_root.path().join(name)).expect("restore");
        }
    }
    assert_eq!(up_api.get_text("/healthz").await, (200, "ok\n".to_string()));
}
