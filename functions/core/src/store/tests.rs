//! Store tests against a real SQLite file in a temp folder.

use std::collections::HashMap;

use super::*;
use crate::model::{Build, BuildStatus, NewBuild, Reason, TriggerKind};

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

fn ending(status: BuildStatus, exit_code: i32, log_size: u64, at: i64) -> Ending {
    Ending { status, exit_code: Some(exit_code), error: None, log_size, report_error: None, finished_at: at }
}

/// Claims what `limits` allow at `now` with a lease of `lease`; the claimed ids.
async fn claim(store: &Store, limits: Limits, now: i64, lease: i64) -> Vec<i64> {
    let (claims, events) = store.claim(limits, "d".into(), now, lease).await.expect("claim");
    assert_eq!(claims.len(), events.len(), "one event per claim");
    claims.iter().map(|c| c.build_id).collect()
}

fn started(start: Start) -> Option<Build> {
    match start {
        Start::Running(build, _) => Some(*build),
        _ => None,
    }
}

#[tokio::test]
async fn claims_respect_project_and_global_limits() {
    let (_dir, store) = store().await;
    for project in ["a", "a", "a", "b", "b", "c"] {
        store.queue_build(new(project), 1).await.expect("queue");
    }
    let ids = claim(&store, limits(3, &[("a", 2), ("b", 1), ("c", 1)]), 10, 1000).await;
    assert_eq!(ids, vec![1, 2, 4], "FIFO within limits: a twice, then b");
    let more = claim(&store, limits(3, &[("a", 2), ("b", 1), ("c", 1)]), 10, 1000).await;
    assert!(more.is_empty(), "global cap reached");
    let more = claim(&store, limits(10, &[("a", 2), ("b", 1)]), 10, 1000).await;
    assert!(more.is_empty(), "c is unknown to the limits, a and b are full: {more:?}");
}

#[tokio::test]
async fn start_is_a_no_op_for_duplicates_and_finish_needs_the_owner() {
    let (_dir, store) = store().await;
    let id = store.queue_build(new("app"), 1).await.expect("queue").build.id;
    claim(&store, limits(1, &[("app", 1)]), 10, 1000).await;
    let build = started(store.start(id, "r1".into(), "hash".into(), 20, 1000).await.expect("start"))
        .expect("running");
    assert_eq!((build.status, build.attempt), (BuildStatus::Running, 1));
    assert_eq!(
        store.start(id, "r2".into(), "hash".into(), 21, 1000).await.expect("start"),
        Start::NotDispatched
    );
    let theirs = store.finish(id, "r2".into(), ending(BuildStatus::Succeeded, 0, 0, 30)).await;
    assert!(theirs.expect("finish").is_none(), "not r2's build");
    let event = store.finish(id, "r1".into(), ending(BuildStatus::Failed, 3, 12, 30)).await;
    let event = event.expect("finish").expect("r1's build");
    assert_eq!(
        (event.from, event.to, event.reason),
        (Some(BuildStatus::Running), BuildStatus::Failed, Reason::Finished)
    );
    let build = store.build(id).await.expect("read").expect("exists");
    assert_eq!(build.status, BuildStatus::Failed);
    assert_eq!(build.exit_code, Some(3));
    assert_eq!(build.log_size, Some(12));
    assert_eq!((build.started_at, build.finished_at), (Some(20), Some(30)));
}

#[tokio::test]
async fn claiming_and_starting_at_once_runs_what_the_limits_allow_under_each_runner() {
    let (_dir, store) = store().await;
    let ids: Vec<i64> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(store.queue_build(new("app"), 1).await.expect("queue").build.id);
        }
        ids
    };
    let mut tokens = 0;
    let (starts, events) = store
        .claim_and_start(
            limits(4, &[("app", 2)]),
            "d".into(),
            |id| format!("d/{id}"),
            move || {
                tokens += 1;
                Ok((tokens, format!("hash{tokens}")))
            },
            10,
            1000,
        )
        .await
        .expect("claim and start");
    let running: Vec<(i64, i32)> = starts
        .iter()
        .map(|(start, token)| match start {
            Start::Running(build, _) => (build.id, *token),
            other => panic!("not started: {other:?}"),
        })
        .collect();
    assert_eq!(running, vec![(ids[0], 1), (ids[1], 2)], "the project's concurrency, oldest first");
    let changes: Vec<(i64, BuildStatus)> = events.iter().map(|e| (e.build_id, e.to)).collect();
    assert_eq!(
        changes,
        vec![
            (ids[0], BuildStatus::Dispatched),
            (ids[1], BuildStatus::Dispatched),
            (ids[0], BuildStatus::Running),
            (ids[1], BuildStatus::Running)
        ],
        "both changes of each are recorded"
    );
    for id in &ids[..2] {
        let build = store.build(*id).await.expect("read").expect("exists");
        assert_eq!((build.status, build.started_at), (BuildStatus::Running, Some(10)));
        let renewal = store.renew(*id, format!("d/{id}"), 20, 1000).await.expect("renew");
        assert!(renewal.still_ours, "the lease is the runner's, not the dispatcher's");
    }
    assert_eq!(store.build(ids[2]).await.expect("read").expect("exists").status, BuildStatus::Queued);
}

#[tokio::test]
async fn cancel_ends_queued_at_once_and_flags_running() {
    let (_dir, store) = store().await;
    let queued = store.queue_build(new("app"), 1).await.expect("queue").build.id;
    let CancelOutcome::Canceled(event) = store.request_cancel(queued, 5).await.expect("cancel") else {
        panic!("a queued build is canceled at once");
    };
    assert_eq!((event.build_id, event.to), (queued, BuildStatus::Canceled));
    assert_eq!(
        store.request_cancel(queued, 6).await.expect("cancel"),
        CancelOutcome::AlreadyFinished(BuildStatus::Canceled)
    );
    let id = store.queue_build(new("app"), 1).await.expect("queue").build.id;
    claim(&store, limits(1, &[("app", 1)]), 10, 1000).await;
    assert_eq!(store.request_cancel(id, 11).await.expect("cancel"), CancelOutcome::Requested);
    assert!(matches!(
        store.start(id, "r".into(), "hash".into(), 12, 1000).await.expect("start"),
        Start::Canceled(_)
    ));
    assert_eq!(store.build(id).await.expect("read").map(|b| b.status), Some(BuildStatus::Canceled));
    assert_eq!(store.request_cancel(999, 1).await.expect("cancel"), CancelOutcome::NotFound);
}

#[tokio::test]
async fn sweep_requeues_while_retries_allow_then_loses() {
    let (_dir, store) = store().await;
    let id = store.queue_build(new("app"), 1).await.expect("queue").build.id;
    let retries: HashMap<String, u32> = [("app".to_string(), 1)].into();
    for expected in [BuildStatus::Queued, BuildStatus::Lost] {
        claim(&store, limits(1, &[("app", 1)]), 10, 100).await;
        store.start(id, "r".into(), "hash".into(), 20, 100).await.expect("start");
        assert!(store.sweep(retries.clone(), 100).await.expect("sweep").is_empty(), "lease still valid");
        let swept = store.sweep(retries.clone(), 121).await.expect("sweep");
        assert_eq!(
            swept.iter().map(|s| (s.to, s.reason)).collect::<Vec<_>>(),
            vec![(expected, Reason::RunnerVanished)]
        );
    }
    let build = store.build(id).await.expect("read").expect("exists");
    assert_eq!(build.status, BuildStatus::Lost);
    assert_eq!((build.attempt, build.retries_used), (2, 1));
    assert!(build.error.unwrap_or_default().contains("runner vanished on attempt 2"));
    let renewal = store.renew(id, "r".into(), 130, 100).await.expect("renew");
    assert!(!renewal.still_ours);
    assert!(
        store.hand_back(id, "r".into(), 1, 131).await.expect("hand back").is_none(),
        "only a running build"
    );
}

#[tokio::test]
async fn a_build_that_never_started_goes_back_to_the_front_without_a_retry() {
    let (_dir, store) = store().await;
    let first = store.queue_build(new("app"), 1).await.expect("queue").build.id;
    let second = store.queue_build(new("app"), 2).await.expect("queue").build.id;
    // retries: 0, and the delivery is lost three times: never `lost`, never a retry.
    for attempt in 1..=3 {
        assert_eq!(claim(&store, limits(1, &[("app", 1)]), 10, 100).await, vec![first], "first in line");
        let swept = store.sweep(HashMap::new(), 200).await.expect("sweep");
        let moves: Vec<_> = swept.iter().map(|e| (e.build_id, e.to, e.reason, e.attempt)).collect();
        assert_eq!(moves, vec![(first, BuildStatus::Queued, Reason::DeliveryLost, attempt)]);
    }
    let build = store.build(first).await.expect("read").expect("exists");
    assert_eq!((build.status, build.attempt, build.retries_used), (BuildStatus::Queued, 3, 0));
    let events = store.build_events(first).await.expect("events");
    let attempts = crate::model::Attempt::from_events(&events);
    assert_eq!(attempts.iter().map(|a| a.number).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(attempts.iter().all(|a| a.reason == Some(Reason::DeliveryLost) && a.started_at.is_none()));
    assert_eq!(store.build(second).await.expect("read").map(|b| b.attempt), Some(0));
}

#[tokio::test]
async fn every_change_is_one_event_in_commit_order() {
    let (_dir, store) = store().await;
    let id = store.queue_build(new("app"), 1).await.expect("queue").build.id;
    claim(&store, limits(1, &[("app", 1)]), 10, 100).await;
    store.start(id, "r".into(), "hash".into(), 20, 100).await.expect("start");
    store.finish(id, "r".into(), ending(BuildStatus::Succeeded, 0, 5, 30)).await.expect("finish");
    let other = store.queue_build(new("b"), 40).await.expect("queue").build.id;
    store.request_cancel(other, 50).await.expect("cancel");
    let events = store.events_after(0, 100).await.expect("events");
    let seen: Vec<_> = events.iter().map(|e| (e.build_id, e.from, e.to, e.reason, e.at)).collect();
    use BuildStatus::*;
    assert_eq!(
        seen,
        vec![
            (id, None, Queued, Reason::Triggered, 1),
            (id, Some(Queued), Dispatched, Reason::Claimed, 10),
            (id, Some(Dispatched), Running, Reason::Started, 20),
            (id, Some(Running), Succeeded, Reason::Finished, 30),
            (other, None, Queued, Reason::Triggered, 40),
            (other, Some(Queued), Canceled, Reason::Canceled, 50),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    let page = store.events_after(events[1].id, 2).await.expect("events");
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), vec![events[2].id, events[3].id]);
    let pending = store.pending_events(i64::MAX, 10).await.expect("pending");
    assert_eq!(
        pending.iter().map(|e| e.to).collect::<Vec<_>>(),
        vec![Canceled],
        "terminal ones, but for a runner's result (its runner stored report.json first)"
    );
    store.followed(pending.iter().map(|e| e.id).collect()).await.expect("followed");
    assert!(store.pending_events(i64::MAX, 10).await.expect("pending").is_empty());
    assert!(store.pending_events(30, 10).await.expect("pending").is_empty(), "only older than asked");
}

#[tokio::test]
async fn prunes_finished_builds_beyond_keep() {
    let (_dir, store) = store().await;
    for _ in 0..5 {
        store.queue_build(new("app"), 1).await.expect("queue");
    }
    store.end_queued(vec![1, 2, 3, 4], Reason::ProjectGone, 2).await.expect("end");
    assert_eq!(store.builds_to_prune("app", 2).await.expect("prune"), vec![1, 2, 3]);
    store.delete_builds(vec![1, 2, 3]).await.expect("delete");
    let page = store.project_builds("app", 10, None).await.expect("page");
    assert_eq!(page.builds.iter().map(|b| b.id).collect::<Vec<_>>(), vec![5, 4]);
    assert!(store.build_events(1).await.expect("events").is_empty(), "events go with their build");
    assert_eq!(store.build_events(4).await.expect("events").len(), 2);
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
async fn a_poll_replaces_the_heads_seen_before_and_polls_are_numbered() {
    let (_dir, store) = store().await;
    let url = "file:///repo";
    let claim = store.claim_poll("app", url, 100, 50).await.expect("claim").expect("due");
    assert_eq!(claim.number, 0);
    let both = vec![("refs/heads/main".into(), "aaa".into()), ("refs/heads/dev".into(), "bbb".into())];
    store.poll_succeeded("app", both, 110).await.expect("record");
    let claim = store.claim_poll("app", url, 120, 50).await.expect("claim").expect("due");
    assert_eq!((claim.number, claim.heads.len()), (1, 2));
    store.poll_succeeded("app", vec![("refs/heads/main".into(), "aaa".into())], 130).await.expect("record");

    let claim = store.claim_poll("app", url, 140, 50).await.expect("claim").expect("due");
    assert_eq!(claim.number, 2);
    assert_eq!(claim.heads.keys().collect::<Vec<_>>(), ["refs/heads/main"], "a deleted branch is forgotten");
    let retaken = store.claim_poll("app", url, 200, 50).await.expect("claim").expect("the hold ran out");
    assert_eq!(retaken.number, 2, "a poll never recorded keeps its number");
    let moved = store.claim_poll("app", "file:///other", 300, 50).await.expect("claim").expect("new URL");
    assert_eq!(moved.number, 2, "numbers go on across a new URL");
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
async fn a_build_handed_back_is_queued_again_while_retries_allow() {
    let (_dir, store) = store().await;
    let id = store.queue_build(new("app"), 1).await.expect("queue").build.id;
    claim(&store, limits(1, &[("app", 1)]), 10, 1_000_000).await;
    store.start(id, "r".into(), "hash".into(), 20, 1_000_000).await.expect("start");
    assert!(store.hand_back(id, "someone-else".into(), 1, 21).await.expect("hand back").is_none());
    let event = store.hand_back(id, "r".into(), 1, 21).await.expect("hand back").expect("r's build");
    assert_eq!((event.to, event.reason), (BuildStatus::Queued, Reason::HandedBack));
    claim(&store, limits(1, &[("app", 1)]), 30, 1_000_000).await;
    store.start(id, "r".into(), "hash".into(), 40, 1_000_000).await.expect("start");
    let event = store.hand_back(id, "r".into(), 1, 41).await.expect("hand back").expect("r's build");
    assert_eq!(event.to, BuildStatus::Lost, "its one retry is used");
}

#[tokio::test]
async fn live_counts_read_the_index_of_live_builds_alone() {
    let (_dir, store) = store().await;
    for project in ["a", "a", "b"] {
        store.queue_build(new(project), 1).await.expect("queue");
    }
    claim(&store, limits(1, &[("b", 1)]), 2, 1000).await;
    let mut counts = store.live_counts().await.expect("counts");
    counts.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        counts,
        vec![("a".to_string(), BuildStatus::Queued, 2), ("b".to_string(), BuildStatus::Dispatched, 1)]
    );
    let plan: Vec<String> = store
        .call(|conn| {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", builds::LIVE_COUNTS))?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(3))?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
        .expect("plan");
    assert!(
        plan.iter().any(|step| step.contains("COVERING INDEX builds_live_by_project")),
        "a scrape must not read history: {plan:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_transactions_and_a_failing_one_is_undone_alone() {
    let (_dir, store) = store().await;
    let mut tasks = Vec::new();
    for n in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if n % 8 == 0 {
                // Writes a row, then fails: its row must not stay.
                store
                    .write(|tx| {
                        tx.execute("INSERT INTO scm_heads (project, ref_name, sha, seen_at) VALUES ('x', 'r', 's', 0)", [])?;
                        Err::<(), _>(StoreError::Corrupt("on purpose".into()))
                    })
                    .await
                    .map(|_| 0)
            } else {
                store.queue_build(new("app"), n).await.map(|inserted| inserted.build.id)
            }
        }));
    }
    let mut ids = Vec::new();
    for (n, task) in tasks.into_iter().enumerate() {
        match task.await.expect("task") {
            Ok(id) => ids.push(id),
            Err(error) => assert!(n % 8 == 0 && matches!(error, StoreError::Corrupt(_)), "{n}: {error}"),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 56, "every build queued, once");
    let heads: i64 = store
        .call(|conn| Ok(conn.query_row("SELECT count(*) FROM scm_heads", [], |r| r.get(0))?))
        .await
        .expect("count");
    assert_eq!(heads, 0, "the failed writes left nothing");
    assert_eq!(store.live_builds().await.expect("live").len(), 56);
}

/// Queues `new` and runs it to `status` (a queued build canceled for `Canceled`).
async fn ended(store: &Store, new: NewBuild, status: BuildStatus) -> Build {
    let project = new.project.clone();
    let id = store.queue_build(new, 1).await.expect("queue").build.id;
    if status == BuildStatus::Canceled {
        store.request_cancel(id, 2).await.expect("cancel");
    } else {
        assert_eq!(claim(store, limits(1, &[(&project, 1)]), 2, 1000).await, vec![id]);
        store.start(id, "r".into(), "hash".into(), 3, 1000).await.expect("start");
        store.finish(id, "r".into(), ending(status, 0, 0, 4)).await.expect("finish");
    }
    store.build(id).await.expect("read").expect("exists")
}

#[tokio::test]
async fn the_previous_ending_is_the_same_branchs_or_the_same_pull_requests() {
    use crate::model::ScmRef;
    use BuildStatus::*;
    let (_dir, store) = store().await;
    let on = |project: &str, branch: Option<&str>| NewBuild {
        scm: ScmRef { branch: branch.map(str::to_string), ..ScmRef::default() },
        ..new(project)
    };
    let pull = |number: u64| NewBuild {
        pull_request: Some(crate::testing::pull_request(number, false)),
        ..on("app", Some("feature"))
    };
    let previous = |build: Build| {
        let store = store.clone();
        async move { store.previous_ending(&build).await.expect("previous") }
    };

    let main = ended(&store, on("app", Some("main")), Succeeded).await;
    assert_eq!(previous(main).await, None, "the first build has none");
    ended(&store, on("app", Some("main")), Failed).await;
    ended(&store, on("app", Some("main")), Canceled).await;
    ended(&store, on("other", Some("main")), Succeeded).await;
    let red = ended(&store, pull(7), Failed).await;
    assert_eq!(previous(red).await, None, "the request's first build");
    ended(&store, on("app", Some("feature")), Succeeded).await;
    let main = ended(&store, on("app", Some("main")), Succeeded).await;
    assert_eq!(
        previous(main).await,
        Some(Failed),
        "main's last ending, not a cancel, another project's, a request's or another branch's"
    );
    let green = ended(&store, pull(7), Succeeded).await;
    assert_eq!(previous(green).await, Some(Failed), "the request's own failure");
    let main = ended(&store, on("app", Some("main")), Succeeded).await;
    assert_eq!(previous(main).await, Some(Succeeded));
    assert_eq!(previous(ended(&store, pull(8), Succeeded).await).await, None, "#8 is not #7");

    // Builds without a branch (a project without a repository) are one line.
    ended(&store, on("app", None), TimedOut).await;
    let manual = ended(&store, on("app", None), Succeeded).await;
    assert_eq!(previous(manual).await, Some(TimedOut));
}
