//! Dispatch passes against a real store in a temp folder.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use sparky_core::{
    Ctx,
    model::{BuildStatus, NewBuild},
    reports::Key,
    store::Claim,
    testing::TempCtx,
};
use tokio_util::sync::CancellationToken;

use crate::{Deliver, Handoff, Passes, dispatch_once, passes};

#[derive(Default)]
struct Collect(Mutex<Vec<i64>>);

impl Deliver for Collect {
    fn deliver(&self, claim: Claim) {
        if let Ok(mut got) = self.0.lock() {
            got.push(claim.build_id);
        }
    }
}

/// Delivers claims nowhere (the tests look at the pass's report).
fn discard() -> Handoff {
    Handoff::Deliver(Arc::new(Collect::default()))
}

async fn queue(ctx: &Ctx, name: &str) -> i64 {
    ctx.queue_build(NewBuild { project: name.into(), ..NewBuild::default() }).await.expect("queue").build.id
}

#[tokio::test]
async fn dispatches_within_limits_and_drops_what_cannot_run() {
    let temp = TempCtx::new(|config| config.max_running = 3).await;
    let ctx = temp.ctx.clone();
    temp.project("a", "script: echo\nconcurrency: 2\n");
    temp.project("b", "script: echo\n");
    temp.project("off", "script: echo\n");
    let a = [queue(&ctx, "a").await, queue(&ctx, "a").await, queue(&ctx, "a").await];
    let b = queue(&ctx, "b").await;
    let off = queue(&ctx, "off").await;
    let gone = queue(&ctx, "gone").await;
    temp.project("off", "script: echo\ndisabled: true\n");

    let sent = Arc::new(Collect::default());
    let handoff = Handoff::Deliver(sent.clone());
    let report = dispatch_once(&ctx, &handoff, false).await.expect("pass");
    assert_eq!(report.dispatched, vec![a[0], a[1], b]);
    assert_eq!(report.dropped, vec![gone, off]);
    assert_eq!(sent.0.lock().expect("lock").clone(), vec![a[0], a[1], b]);
    let dropped = ctx.store.build(off).await.expect("read").expect("row");
    assert_eq!(dropped.status, BuildStatus::Canceled);
    assert!(dropped.error.unwrap_or_default().contains("disabled"));

    let stored =
        sparky_core::reports::get_bytes(ctx.reports.as_ref(), &Key::report("off", off).expect("key"))
            .await
            .expect("read")
            .expect("a report.json for a build canceled before it started");
    let report: serde_json::Value = serde_json::from_slice(&stored).expect("JSON");
    assert_eq!((report["status"].as_str(), report["complete"].as_bool()), (Some("canceled"), Some(true)));

    let again = dispatch_once(&ctx, &handoff, false).await.expect("pass");
    assert!(again.dispatched.is_empty(), "limits are full: {again:?}");
}

/// Waits until `sent` holds `count` deliveries.
async fn delivered(sent: &Collect, count: usize) -> Vec<i64> {
    for _ in 0..200 {
        let got = sent.0.lock().expect("lock").clone();
        if got.len() >= count {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("only {:?} delivered", sent.0.lock().expect("lock"));
}

#[tokio::test]
async fn a_pass_whose_caller_hung_up_still_delivers_what_it_claimed() {
    let temp = TempCtx::new(|config| config.max_running = 10).await;
    let ctx = temp.ctx.clone();
    temp.project("a", "script: echo\nconcurrency: 5\n");
    let ids = [queue(&ctx, "a").await, queue(&ctx, "a").await];
    let sent = Arc::new(Collect::default());
    let passes = Arc::new(Passes::default());
    let shutdown = CancellationToken::new();
    let handoff = Handoff::Deliver(sent.clone());
    let pass_loop =
        tokio::spawn(passes::run_loop(ctx.clone(), handoff, passes.clone(), None, shutdown.clone()));
    // The first pass runs at start; wait for it, then ask for more and hang up at once
    // (a poke's caller timing out).
    delivered(&sent, 2).await;
    let third = queue(&ctx, "a").await;
    {
        // Asked once, then dropped: the caller is gone before the pass could begin.
        let mut asked = Box::pin(passes.pass());
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(asked.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "a pass cannot have ended before the loop ran");
    }
    let got = delivered(&sent, 3).await;
    assert_eq!(got, vec![ids[0], ids[1], third], "each claimed build delivered once");
    let build = ctx.store.build(third).await.expect("read").expect("row");
    assert_eq!((build.status, build.attempt), (BuildStatus::Dispatched, 1));
    // A waiting caller gets the report of a pass that began after it asked.
    let report = passes.pass().await.expect("pass");
    assert!(report.dispatched.is_empty(), "nothing left to claim: {report:?}");
    shutdown.cancel();
    pass_loop.await.expect("the loop ends on shutdown");
}

#[tokio::test]
async fn ended_builds_a_dead_process_left_pending_are_followed_up() {
    let temp = TempCtx::new(|_| {}).await;
    let ctx = temp.ctx.clone();
    temp.project("a", "script: echo\nkeep_builds: 1\n");
    let first = queue(&ctx, "a").await;
    let second = queue(&ctx, "a").await;
    // As if a process ended both builds and died before their follow-ups: rows and
    // events written, no report.json, no pruning.
    sparky_core::testing::end_without_follow_up(&ctx, &[first, second]).await;
    let key = Key::report("a", second).expect("key");
    assert!(sparky_core::reports::get_bytes(ctx.reports.as_ref(), &key).await.expect("read").is_none());
    let handoff = discard();
    let fresh = dispatch_once(&ctx, &handoff, true).await.expect("pass");
    assert_eq!(fresh.followed_up, 0, "a follow-up still in its process's hands is left alone");
    sparky_core::testing::age_events(&ctx, 60_000).await;
    let report = dispatch_once(&ctx, &handoff, true).await.expect("pass");
    assert_eq!(report.followed_up, 2);
    let stored = sparky_core::reports::get_bytes(ctx.reports.as_ref(), &key).await.expect("read");
    let doc: serde_json::Value = serde_json::from_slice(&stored.expect("report.json written")).expect("JSON");
    assert_eq!(doc["status"], "canceled");
    assert!(ctx.store.build(first).await.expect("read").is_none(), "pruned to keep_builds: 1");
    let again = dispatch_once(&ctx, &handoff, true).await.expect("pass");
    assert_eq!(again.followed_up, 0, "done once");
}

/// One request to the dispatch router; the status and the JSON answer.
async fn ask(
    ctx: &Ctx,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    use tower::ServiceExt as _;
    let app = crate::router(crate::Dispatcher { ctx: ctx.clone(), passes: Arc::default() });
    let mut request = http::Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .oneshot(request.body(axum::body::Body::from(body.to_string())).expect("request"))
        .await
        .expect("answer");
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn the_runner_api_is_only_for_holders_of_the_internal_token() {
    let off = TempCtx::new(|_| {}).await;
    off.project("a", "script: echo\n");
    let id = queue(&off.ctx, "a").await;
    dispatch_once(&off.ctx, &discard(), false).await.expect("pass");
    let start = format!("/internal/v1/builds/{id}/start");
    let owner = r#"{"owner":"someone"}"#;
    let (status, answer) = ask(&off.ctx, "POST", &start, Some("anything"), owner).await;
    assert_eq!(status, 404, "no internal token configured: the API is off ({answer})");

    let temp = TempCtx::new(|config| {
        config.internal_token = Some(sparky_core::secrets::Secret::new("the-functions-token"));
        config.api_token = Some(sparky_core::secrets::Secret::new("the-admin-token"));
    })
    .await;
    let ctx = temp.ctx.clone();
    temp.project("a", "script: echo\n");
    let id = queue(&ctx, "a").await;
    dispatch_once(&ctx, &discard(), false).await.expect("pass");
    let path = |action: &str| format!("/internal/v1/builds/{id}/{action}");
    for token in [None, Some("wrong"), Some("the-admin-token")] {
        for (method, action) in
            [("POST", "start"), ("POST", "finish"), ("GET", "cancel"), ("POST", "downstream")]
        {
            let (status, _) = ask(&ctx, method, &path(action), token, owner).await;
            assert_eq!(status, 401, "{method} {action} with {token:?}");
        }
        let (status, _) = ask(&ctx, "GET", &format!("/internal/v1/builds/{id}"), token, "").await;
        assert_eq!(status, 401, "reading the build with {token:?}");
    }
    let build = ctx.store.build(id).await.expect("read").expect("row");
    assert_eq!(build.status, BuildStatus::Dispatched, "nothing was changed by the refused calls");

    let token = Some("the-functions-token");
    let (status, answer) = ask(&ctx, "POST", &path("start"), token, "{not json").await;
    assert_eq!((status, answer["error"].is_string()), (400, true), "{answer}");
    let (status, _) = ask(&ctx, "POST", &path("downstream"), token, "").await;
    assert_eq!(status, 409, "downstream only while the build runs");
    let (status, answer) = ask(&ctx, "POST", &path("start"), token, owner).await;
    assert_eq!(status, 200);
    assert_eq!(answer["build"]["status"], "running");
    assert!(answer["token"].as_str().is_some_and(|t| t.starts_with("sparky-job-")), "{answer}");
    assert_eq!(answer["project"]["config"]["Ok"], "script: echo\n");
    let (_, again) = ask(&ctx, "POST", &path("start"), token, owner).await;
    assert!(again.is_null(), "a second start has nothing to run: {again}");
    let ending = r#"{"owner":"someone else","ending":{"status":"succeeded","exit_code":0,"error":null,"log_size":0,"report_error":null,"finished_at":1}}"#;
    let (status, refused) = ask(&ctx, "POST", &path("finish"), token, ending).await;
    assert_eq!(status, 409, "not that runner's build: {refused}");
    let (_, renewal) = ask(&ctx, "POST", &path("renew"), token, owner).await;
    assert_eq!(renewal["still_ours"], true);
    let build = ctx.store.build(id).await.expect("read").expect("row");
    assert_eq!(build.status, BuildStatus::Running);
}
