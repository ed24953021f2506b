//! The queries that run on every pass, page or build end must not read history: with
//! 10,000 builds in the store, `EXPLAIN QUERY PLAN` of each may only search an index,
//! or scan one of the partial indexes of live builds (whose size is the queue's, not
//! history's). They also give the same answers as the plain queries they replace.

use super::{
    builds::{
        COLUMNS, DELETE_BUILD, DELETE_DELIVERIES, DELETE_EVENTS, LAST_BUILDS_FROM, LAST_BY_TRIGGER_FROM,
        OLDEST, PREVIOUS_IN_PULL, PREVIOUS_ON_BRANCH, PROJECT_COUNT, QUEUED_IDS, QUEUED_PROJECTS,
    },
    events::{BUILD_EVENTS, EVENTS_AFTER, FACTS, FOLLOWED, PENDING_EVENTS},
    history::history_query,
    lapses::{ANY_EXPIRED, EXPIRED},
    transitions::{ACTIVE_PER_PROJECT, CLAIM_CANDIDATES},
    *,
};
use crate::model::{BuildStatus, TriggerKind};

/// Partial indexes over live rows only (builds not finished, events whose follow-ups
/// are not done): scanning one costs the queue, not history.
const LIVE_INDEXES: [&str; 4] = ["builds_queued", "builds_active", "builds_live", "events_pending"];

/// 10,000 builds over 10 projects (half of them in `big`), all kinds of trigger; the
/// newest few of `big` queued or running.
async fn filled() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("sparky.db"), JournalMode::Wal).await.expect("open");
    store
        .write(|tx| {
            let mut insert = tx.prepare(
                "INSERT INTO builds (project, status, trigger_kind, created_at, finished_at, lease_until) \
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
            )?;
            let kinds = ["api", "cron", "scm", "webhook"];
            for i in 0..10_000i64 {
                let project = if i % 2 == 0 { "big".to_string() } else { format!("p{}", i % 9) };
                let (status, lease) = match i {
                    9_990.. if i % 2 == 0 => ("queued", None),
                    9_980.. if i % 2 == 0 => ("running", Some(i)),
                    _ if i % 7 == 0 => ("failed", None),
                    _ => ("succeeded", None),
                };
                insert.execute(rusqlite::params![
                    project,
                    status,
                    kinds[((i / 2) % 4) as usize],
                    i,
                    lease
                ])?;
            }
            Ok(())
        })
        .await
        .expect("fill");
    (dir, store)
}

/// The lines of `sql`'s `EXPLAIN QUERY PLAN`, its parameters left unbound (NULL: the
/// plan is the same for any value, except where one decides between `= ?` and
/// `IS NULL`).
fn plan(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    plan_with(conn, sql, &[])
}

/// The same with the first parameters bound to `values`.
fn plan_with(conn: &rusqlite::Connection, sql: &str, values: &[&dyn rusqlite::ToSql]) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("explain");
    for (i, value) in values.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, value).expect("bind");
    }
    let mut rows = stmt.raw_query();
    let mut details: Vec<String> = Vec::new();
    while let Some(row) = rows.next().expect("plan row") {
        details.push(row.get(3).expect("plan detail"));
    }
    details
}

/// The plan's lines that read history: a scan of `builds` (or another table) that is
/// not a scan of a live partial index.
fn history_scans(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    plan(conn, sql)
        .into_iter()
        .filter(|line| {
            let scans_table = ["SCAN builds", "SCAN b ", "SCAN events", "SCAN deliveries"]
                .iter()
                .any(|t| line.starts_with(t) || line == t.trim_end());
            scans_table && !LIVE_INDEXES.iter().any(|index| line.contains(index))
        })
        .collect()
}

#[tokio::test]
async fn hot_queries_use_indexes_at_ten_thousand_builds() {
    let (_dir, store) = filled().await;
    let hot: Vec<(&str, String)> = vec![
        ("claim: active per project", ACTIVE_PER_PROJECT.into()),
        ("claim: candidates", CLAIM_CANDIDATES.into()),
        ("sweep: any expired", ANY_EXPIRED.into()),
        ("sweep: expired", EXPIRED.into()),
        ("queued projects", QUEUED_PROJECTS.into()),
        ("queued ids", QUEUED_IDS.into()),
        ("last builds", format!("{LAST_BUILDS_FROM} SELECT {COLUMNS} FROM builds WHERE id IN newest")),
        (
            "last builds by trigger",
            format!(
                "{LAST_BY_TRIGGER_FROM} SELECT {COLUMNS} FROM builds WHERE id IN newest ORDER BY id DESC"
            ),
        ),
        ("notify: previous on the branch", PREVIOUS_ON_BRANCH.into()),
        ("notify: previous in the request", PREVIOUS_IN_PULL.into()),
        ("prune: count", PROJECT_COUNT.into()),
        ("prune: oldest", OLDEST.into()),
        (
            "history page",
            format!("SELECT {COLUMNS} FROM builds WHERE project = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"),
        ),
        (
            "live builds",
            format!(
                "SELECT {COLUMNS} FROM builds WHERE status IN ('queued', 'dispatched', 'running') ORDER BY id ASC"
            ),
        ),
        ("events after a cursor", EVENTS_AFTER.into()),
        ("a build's events", BUILD_EVENTS.into()),
        ("follow-up: pending events", PENDING_EVENTS.into()),
        ("follow-up: followed", FOLLOWED.into()),
        ("start and end: facts", FACTS.into()),
        ("prune: delete a build", DELETE_BUILD.into()),
        ("prune: delete its events", DELETE_EVENTS.into()),
        ("prune: delete its deliveries", DELETE_DELIVERIES.into()),
    ];
    let scans = store
        .call(move |conn| {
            Ok(hot
                .into_iter()
                .flat_map(|(name, sql)| {
                    history_scans(conn, &sql).into_iter().map(move |l| format!("{name}: {l}"))
                })
                .collect::<Vec<_>>())
        })
        .await
        .expect("plans");
    assert!(scans.is_empty(), "queries that read history:\n{}", scans.join("\n"));
}

/// A history page (all projects' or one's, filtered by status, branch or trigger) is a
/// range of one index holding exactly what the filter selects, in id order: it reads
/// the page and no more, nor sorts. Two filters other than the project (status and
/// branch, say) read the range of one and check the other on each row: that costs the
/// builds of that range it skips, not the page. A text search reads the trigram
/// index's matches newest first, without sorting, and checks the other filters on
/// each: it costs the matches it skips (older ones, other projects'), not history.
#[tokio::test]
async fn history_pages_are_ranges_of_an_index_matching_the_filter() {
    let (_dir, store) = filled().await;
    let project = || Some("big".to_string());
    let (status, trigger) = (Some(BuildStatus::Failed), Some(TriggerKind::Cron));
    let branch = || Some("main".to_string());
    let text = || Some("flux".to_string());
    let cases = [
        (HistoryFilter::default(), "SEARCH b USING INTEGER PRIMARY KEY (rowid<?)"),
        (HistoryFilter { status, ..Default::default() }, "(status=? AND id<?)"),
        (HistoryFilter { branch: branch(), ..Default::default() }, "(scm_branch=? AND id<?)"),
        (HistoryFilter { trigger, ..Default::default() }, "(trigger_kind=? AND id<?)"),
        (HistoryFilter { project: project(), ..Default::default() }, "(project=? AND id<?)"),
        (
            HistoryFilter { project: project(), status, ..Default::default() },
            "(project=? AND status=? AND id<?)",
        ),
        (
            HistoryFilter { project: project(), branch: branch(), ..Default::default() },
            "(project=? AND scm_branch=? AND id<?)",
        ),
        (
            HistoryFilter { project: project(), trigger, ..Default::default() },
            "(project=? AND trigger_kind=? AND id<?)",
        ),
        // The trigram index, with the MATCH and the `rowid <` bound.
        (HistoryFilter { text: text(), ..Default::default() }, "SCAN t VIRTUAL TABLE INDEX"),
        (
            HistoryFilter { project: project(), text: text(), ..Default::default() },
            "SCAN t VIRTUAL TABLE INDEX",
        ),
    ];
    let wrong = store
        .call(move |conn| {
            let mut wrong = Vec::new();
            for (filter, range) in cases {
                let lines = plan(conn, &history_query(&filter, 50, Some(5_000)).0);
                let sorts = lines.iter().any(|l| l.contains("TEMP B-TREE"));
                let leads = lines.first().is_some_and(|l| l.contains(range));
                if sorts || !leads || !history_scans(conn, &history_query(&filter, 50, None).0).is_empty() {
                    wrong.push(format!("{filter:?}, wanted {range}:\n  {}", lines.join("\n  ")));
                }
            }
            Ok(wrong)
        })
        .await
        .expect("plans");
    assert!(wrong.is_empty(), "history pages that read more than a range:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn index_shaped_queries_answer_as_the_plain_ones() {
    let (_dir, store) = filled().await;
    let last = store.last_builds().await.expect("last builds");
    let (plain_last, plain_kinds, plain_counts) = store
        .call(|conn| {
            let pairs = |sql: &str| -> Result<Vec<(String, i64)>, StoreError> {
                Ok(conn
                    .prepare(sql)?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?)
            };
            Ok((
                pairs("SELECT project, max(id) FROM builds GROUP BY project")?,
                pairs(
                    "SELECT trigger_kind, max(id) FROM builds WHERE project = 'big' GROUP BY trigger_kind",
                )?,
                pairs("SELECT project, count(*) FROM builds GROUP BY project")?,
            ))
        })
        .await
        .expect("plain queries");
    assert_eq!(last.len(), plain_last.len());
    for (project, id) in &plain_last {
        assert_eq!(last[project].id, *id, "{project}");
    }
    let mut by_trigger: Vec<i64> =
        store.last_builds_by_trigger("big").await.expect("by trigger").iter().map(|b| b.id).collect();
    let mut plain: Vec<i64> = plain_kinds.iter().map(|(_, id)| *id).collect();
    plain.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(by_trigger, plain, "newest first");
    by_trigger.dedup();
    assert_eq!(by_trigger.len(), 4);

    // The kept counts match, and pruning takes the oldest finished beyond `keep`.
    let big = plain_counts.iter().find(|(p, _)| p == "big").map(|(_, n)| *n).expect("big");
    let prune = store.builds_to_prune("big", (big - 3) as u32).await.expect("prune");
    assert_eq!(prune, vec![1, 3, 5], "ids start at 1; big has the odd ones");
    assert!(store.builds_to_prune("big", big as u32).await.expect("nothing").is_empty());
    store.delete_builds(prune).await.expect("delete");
    let kept = store.builds_to_prune("big", 0).await.expect("all").len() as i64;
    assert_eq!(kept, big - 3 - 5 - 5, "everything but the 3 deleted, 5 queued and 5 running");
}

#[tokio::test]
async fn a_branchs_previous_ending_is_one_search_of_its_index() {
    let (_dir, store) = filled().await;
    let plan = store
        .call(|conn| Ok(plan_with(conn, PREVIOUS_ON_BRANCH, &[&"big", &"main", &10_000])))
        .await
        .expect("plan");
    assert!(
        plan.iter().any(|step| step.contains("builds_ended_by_branch (project=? AND scm_branch=? AND id<?)")),
        "{plan:?}"
    );
}
