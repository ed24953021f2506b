//! Store tests against a real SQLite file in a temp folder.

use std::collections::HashMap;

use super::*;
use crate::model::{BuildStatus, NewBuild, TriggerKind};

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("sparky.db"), JournalMode::Wal).await.expect("open");
    (dir, store)
}

fn new(project: &str) -> NewBuild {
    NewBuild { project: project.into(), ..NewBuild::default() }
}

fn limits(global: usize, projects: &[(&str, u32)]) -> Limits {
    Limits { global, concurrency: projects.iter().map(|(p, n)| (p.to_string(), *n)).collect() }
}

#[tokio::test]
async fn queues_and_reads_builds_with_idempotency() {
    let (_dir, store) = store().await;
    let mut first = new("app");
    first.params.insert("target".into(), "prod".into());
    first.idempotency_key = Some("k1".into());
    first.trigger = Some(TriggerKind::Cron);
    let a = store.queue_build(first.clone(), 1000).await.expect("queue");
    assert!(a.created);
    assert_eq!(a.build.status, BuildStatus::Queued);
    assert_eq!(a.build.trigger, TriggerKind::Cron);
    assert_eq!(a.build.params.get("target").map(String::as_str), Some("prod"));
    let again = store.queue_build(first, 2000).await.expect("queue again");
    assert!(!again.created);
    assert_eq!(again.build.id, a.build.id);
    assert_eq!(store.live_builds().await.expect("live").len(), 1);
}

#[tokio::test]
async fn migrations_apply_once_when_reopened() {
    let (dir, store) = store().await;
    store.queue_build(new("app"), 1).await.expect("queue");
    drop(store);
    let reopened = Store::open(dir.path().join("sparky.db"), JournalMode::Delete).await.expect("reopen");
    assert_eq!(reopened.live_builds().await.expect("live").len(), 1);
}

#[tokio::test]
async fn pages_history_newest_first() {
    let (_dir, store) = store().await;
    for _ in 0..5 {
        store.queue_build(new("app"), 1).await.expect("queue");
    }
    store.queue_build(new("other"), 1).await.expect("queue");
    let page = store.project_builds("app", 2, None).await.expect("page");
    assert_eq!(page.builds.iter().map(|b| b.id).collect::<Vec<_>>(), vec![5, 4]);
    assert_eq!(page.next_before, Some(4));
    let page = store.project_builds("app", 2, Some(2)).await.expect("page");
    assert_eq!(page.builds.iter().map(|b| b.id).collect::<Vec<_>>(), vec![1]);
    assert_eq!(page.next_before, None);
    let last = store.last_builds().await.expect("last");
    assert_eq!(last["app"].id, 5);
    assert_eq!(last["other"].id, 6);
}

#[tokio::test]
async fn claims_respect_project_and_global_limits() {
    let (_dir, store) = store().await;
    for project in ["a", "a", "a", "b", "b", "c"] {
        store.queue_build(new(project), 1).await.expect("queue");
    }
    let claimed =
        store.claim(limits(3, &[("a", 2), ("b", 1), ("c", 1)]), "d".into(), 10, 1000).await.expect("claim");
    let ids: Vec<i64> = claimed.iter().map(|c| c.build_id).collect();
    assert_eq!(ids, vec![1, 2, 4], "FIFO within limits: a twice, then b");
    let more =
        store.claim(limits(3, &[("a", 2), ("b", 1), ("c", 1)]), "d".into(), 10, 1000).await.expect("claim");
    assert!(more.is_empty(), "global cap reached");
    let more = store.claim(limits(10, &[("a", 2), ("b", 1)]), "d".into(), 10, 1000).await.expect("claim");
    assert!(more.is_empty(), "c is unknown to the limits, a and b are full: {more:?}");
}

#[tokio::test]
async fn start_is_a_no_op_for_duplicates_and_finish_needs_the_owner() {
    let (_dir, store) = store().await;
    let id = store.queue_build(new("app"), 1).await.expect("queue").build.id;
    store.claim(limits(1, &[("app", 1)]), "d".into(), 10, 1000).await.expect("claim");
    let started = store.start(id, "r1".into(), 20, 1000).await.expect("start");
    assert_eq!(started.map(|b| b.status), Some(BuildStatus::Running));
    assert!(store.start(id, "r2".into(), 21, 1000).await.expect("start").is_none());
    assert!(
        !store.finish(id, "r2".into(), BuildStatus::Succeeded, Some(0), None, 0, 30).await.expect("finish")
    );
    assert!(store.finish(id, "r1".into(), BuildStatus::Failed, Some(3), None, 12, 30).await.expect("finish"));
    let build = store.build(id).await.expect("read").expect("exists");
    assert_eq!(build.status, BuildStatus::Failed);
    assert_eq!(build.exit_code, Some(3));
    assert_eq!(build.log_size, Some(12));
    assert_eq!((build.started_at, build.finished_at), (Some(20), Some(30)));
}

#[tokio::test]
async fn cancel_ends_queued_at_once_and_flags_running() {
    let (_dir, store) = store().await;
    let queued = store.queue_build(new("app"), 1).await.expect("queue").build.id;
    assert_eq!(store.request_cancel(queued, 5).await.expect("cancel"), CancelOutcome::Canceled);
    assert_eq!(
        store.request_cancel(queued, 6).await.expect("cancel"),
        CancelOutcome::AlreadyFinished(BuildStatus::Canceled)
    );
    let id = store.queue_build(new("app"), 1).await.expect("queue").build.id;
    store.claim(limits(1, &[("app", 1)]), "d".into(), 10, 1000).await.expect("claim");
    assert_eq!(store.request_cancel(id, 11).await.expect("cancel"), CancelOutcome::Requested);
    assert!(store.start(id, "r".into(), 12, 1000).await.expect("start").is_none());
    assert_eq!(store.build(id).await.expect("read").map(|b| b.status), Some(BuildStatus::Canceled));
    assert_eq!(store.request_cancel(999, 1).await.expect("cancel"), CancelOutcome::NotFound);
}

#[tokio::test]
async fn sweep_requeues_while_retries_allow_then_loses() {
    let (_dir, store) = store().await;
    let id = store.queue_build(new("app"), 1).await.expect("queue").build.id;
    let retries: HashMap<String, u32> = [("app".to_string(), 1)].into();
    for expected in [BuildStatus::Queued, BuildStatus::Lost] {
        store.claim(limits(1, &[("app", 1)]), "d".into(), 10, 100).await.expect("claim");
        store.start(id, "r".into(), 20, 100).await.expect("start");
        assert!(store.sweep(retries.clone(), 100).await.expect("sweep").is_empty(), "lease still valid");
        let swept = store.sweep(retries.clone(), 121).await.expect("sweep");
        assert_eq!(swept.iter().map(|s| s.status).collect::<Vec<_>>(), vec![expected]);
    }
    let build = store.build(id).await.expect("read").expect("exists");
    assert_eq!(build.status, BuildStatus::Lost);
    assert_eq!(build.attempt, 1);
    assert!(build.error.unwrap_or_default().contains("lease"));
    let renewal = store.renew(id, "r".into(), 130, 100).await.expect("renew");
    assert!(!renewal.still_ours);
    assert!(!store.release(id, "r".into()).await.expect("release"), "only a running build's lease");
}

#[tokio::test]
async fn prunes_finished_builds_beyond_keep() {
    let (_dir, store) = store().await;
    for _ in 0..5 {
        store.queue_build(new("app"), 1).await.expect("queue");
    }
    store.end_queued(vec![1, 2, 3, 4], BuildStatus::Canceled, "test".into(), 2).await.expect("end");
    assert_eq!(store.builds_to_prune("app", 2).await.expect("prune"), vec![1, 2, 3]);
    store.delete_builds(vec![1, 2, 3]).await.expect("delete");
    let page = store.project_builds("app", 10, None).await.expect("page");
    assert_eq!(page.builds.iter().map(|b| b.id).collect::<Vec<_>>(), vec![5, 4]);
}

#[tokio::test]
async fn polls_are_claimed_once_and_back_off_after_failures() {
    let (_dir, store) = store().await;
    let claim = store.claim_poll("app", "file:///repo", 100, 50).await.expect("claim").expect("due");
    assert!(claim.heads.is_empty());
    assert!(
        store.claim_poll("app", "file:///repo", 110, 50).await.expect("claim").is_none(),
        "held by the first"
    );
    store.poll_succeeded("app", vec![("main".into(), "aaa".into())], 120).await.expect("record");
    let claim = store.claim_poll("app", "file:///repo", 130, 50).await.expect("claim").expect("due again");
    assert_eq!(claim.heads.get("main").map(String::as_str), Some("aaa"));
    store.poll_failed("app", "unreachable".into(), 140, 1000).await.expect("record");
    assert!(store.claim_poll("app", "file:///repo", 500, 50).await.expect("claim").is_none(), "backing off");
    let state = store.poll_state("app").await.expect("state").expect("exists");
    assert_eq!((state.failures, state.last_error.as_deref()), (1, Some("unreachable")));
    assert_eq!(state.heads, vec![("main".to_string(), "aaa".to_string(), 120)]);
    let claim =
        store.claim_poll("app", "file:///other", 600, 50).await.expect("claim").expect("new URL: due");
    assert!(claim.heads.is_empty(), "heads of another repository are forgotten");
}

#[tokio::test]
async fn keeps_the_downstream_chain_and_finds_children() {
    let (_dir, store) = store().await;
    let parent = store.queue_build(new("a"), 1).await.expect("queue").build.id;
    let mut child = new("b");
    child.parent_build = Some(parent);
    child.chain = vec!["a".into()];
    let child = store.queue_build(child, 2).await.expect("queue").build;
    assert_eq!(child.chain, vec!["a".to_string()]);
    assert_eq!(
        store.children(parent).await.expect("children").iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![child.id]
    );
}

#[tokio::test]
async fn a_released_lease_is_swept_at_once() {
    let (_dir, store) = store().await;
    let id = store.queue_build(new("app"), 1).await.expect("queue").build.id;
    store.claim(limits(1, &[("app", 1)]), "d".into(), 10, 1_000_000).await.expect("claim");
    store.start(id, "r".into(), 20, 1_000_000).await.expect("start");
    assert!(!store.release(id, "someone-else".into()).await.expect("release"));
    assert!(store.release(id, "r".into()).await.expect("release"));
    let swept = store.sweep([("app".to_string(), 1)].into(), 21).await.expect("sweep");
    assert_eq!(swept.iter().map(|s| s.status).collect::<Vec<_>>(), vec![BuildStatus::Queued]);
}
