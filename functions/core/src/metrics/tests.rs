use std::collections::HashMap;

use crate::{
    Config, Ctx,
    model::{BuildStatus, NewBuild, TriggerKind},
    store::{Ending, Limits},
    time::now_ms,
};

async fn ctx() -> (tempfile::TempDir, Ctx) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ctx = Ctx::open_standalone(Config::for_root(dir.path())).await.expect("open");
    (dir, ctx)
}

fn new(project: &str, trigger: TriggerKind) -> NewBuild {
    NewBuild { project: project.into(), trigger: Some(trigger), ..NewBuild::default() }
}

fn limits() -> Limits {
    Limits { global: 4, concurrency: HashMap::from([("app".to_string(), 1)]) }
}

/// The lines of `text` that start with `prefix`.
fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[tokio::test]
async fn each_change_is_counted_once_where_it_happens_and_timed() {
    let (_dir, ctx) = ctx().await;
    let id = ctx.queue_build(new("app", TriggerKind::Cron)).await.expect("queue").build.id;
    let claims = ctx.claim_builds(limits()).await.expect("claim");
    assert_eq!(claims.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    ctx.start_build(id, "me").await.expect("start").expect("started");
    let ending = Ending {
        status: BuildStatus::Failed,
        exit_code: Some(1),
        error: None,
        log_size: 0,
        report_error: None,
        finished_at: now_ms() + 1500,
    };
    assert!(ctx.finish_build(id, "me", ending).await.expect("finish"));
    // One queued and then canceled while queued: ended, but it never ran.
    let other = ctx.queue_build(new("app", TriggerKind::Api)).await.expect("queue").build.id;
    ctx.cancel_build(other).await.expect("cancel");
    // And one left in the queue, for the gauges.
    ctx.queue_build(new("lib", TriggerKind::Webhook)).await.expect("queue");

    let live = ctx.store.live_counts().await.expect("live counts");
    let text = ctx.metrics.encode(Some(&live)).expect("encode");
    let has = |line: &str| assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    has(r#"sparky_builds_queued_total{project="app",trigger="cron"} 1"#);
    has(r#"sparky_builds_queued_total{project="app",trigger="api"} 1"#);
    has(r#"sparky_builds_started_total{project="app",trigger="cron"} 1"#);
    has(r#"sparky_builds_finished_total{project="app",trigger="cron",status="failed"} 1"#);
    has(r#"sparky_builds_finished_total{project="app",trigger="api",status="canceled"} 1"#);
    has(r#"sparky_build_duration_seconds_count{project="app",status="failed"} 1"#);
    has(r#"sparky_build_duration_seconds_bucket{le="1.0",project="app",status="failed"} 0"#);
    has(r#"sparky_build_duration_seconds_bucket{le="5.0",project="app",status="failed"} 1"#);
    has(r#"sparky_build_queue_wait_seconds_count{project="app"} 1"#);
    assert!(
        lines(&text, "sparky_build_duration_seconds_count{project=\"app\",status=\"canceled\"}").is_empty(),
        "a build canceled in the queue never ran: {text}"
    );
    has(r#"sparky_builds{status="queued"} 1"#);
    has(r#"sparky_builds{status="running"} 0"#);
    has(r#"sparky_builds{status="dispatched"} 0"#);
    has(r#"sparky_project_builds{project="lib",status="queued"} 1"#);
    assert_eq!(lines(&text, "sparky_project_builds{").len(), 1, "{text}");
    has(&format!("sparky_max_running {}", ctx.config.max_running));
    assert!(text.ends_with("# EOF\n"), "{text}");

    // A process without the store: its counters, no gauges of the builds.
    assert!(!ctx.metrics.encode(None).expect("encode").contains("sparky_builds{"));
}

#[tokio::test]
async fn a_start_waits_from_the_queueing_not_from_an_undelivered_dispatch() {
    let (_dir, ctx) = ctx().await;
    let id = ctx.queue_build(new("app", TriggerKind::Api)).await.expect("queue").build.id;
    ctx.claim_builds(limits()).await.expect("claim");
    let reason = crate::model::Reason::DeliveryFailed;
    assert!(ctx.requeue_dispatched(id, reason).await.expect("requeue"));
    ctx.claim_builds(limits()).await.expect("claim again");
    let started = ctx.start_build(id, "me").await.expect("start").expect("started");
    let events = ctx.store.build_events(id).await.expect("events");
    let text = ctx.metrics.encode(None).expect("encode");
    assert!(text.contains(r#"sparky_build_queue_wait_seconds_count{project="app"} 1"#), "{text}");
    // Its wait counts from its first event, the queueing.
    let waited = started.build.started_at.expect("started") - events[0].at;
    let sum: f64 = lines(&text, "sparky_build_queue_wait_seconds_sum")[0]
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("sum");
    assert!((sum - waited as f64 / 1000.0).abs() < 1e-9, "{sum} vs {waited} ms");
}
