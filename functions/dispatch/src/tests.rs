//! Dispatch passes against a real store in a temp folder.

use std::sync::{Arc, Mutex};

use sparky_core::{
    Ctx,
    model::{BuildStatus, NewBuild},
    reports::Key,
    store::Claim,
    testing::TempCtx,
};

use crate::{Deliver, dispatch_once};

#[derive(Default)]
struct Collect(Mutex<Vec<i64>>);

impl Deliver for Collect {
    fn deliver(&self, claim: Claim) {
        if let Ok(mut got) = self.0.lock() {
            got.push(claim.build_id);
        }
    }
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
    let report = dispatch_once(&ctx, sent.as_ref()).await.expect("pass");
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

    let again = dispatch_once(&ctx, sent.as_ref()).await.expect("pass");
    assert!(again.dispatched.is_empty(), "limits are full: {again:?}");
}
