//! The queries that run on every pass, page or build end must not read history: with
//! 10,000 builds in the store, `EXPLAIN QUERY PLAN` of each may only search an index,
//! or scan one of the partial indexes of live builds (whose size is the queue's, not
//! history's). They also give the same answers as the plain queries they replace.

use super::{
    builds::{
        COLUMNS, LAST_BUILDS_FROM, LAST_BY_TRIGGER_FROM, OLDEST, PREVIOUS_IN_PULL, PREVIOUS_ON_BRANCH,
        PROJECT_COUNT, QUEUED_IDS, QUEUED_PROJECTS,
    },
    lapses::{ANY_EXPIRED, EXPIRED},
    transitions::{ACTIVE_PER_PROJECT, CLAIM_CANDIDATES},
    *,
};

/// Partial indexes over live builds only: scanning one costs the queue, not history.
const LIVE_INDEXES: [&str; 3] = ["builds_queued", "builds_active", "builds_live"];

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

/// The plan's lines that read history: a scan of `builds` (or another table) that is
/// not a scan of a live partial index.
fn history_scans(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("explain");
    // Parameters left unbound are NULL: the plan is the same.
    let mut rows = stmt.raw_query();
    let mut details: Vec<String> = Vec::new();
    while let Some(row) = rows.next().expect("plan row") {
        details.push(row.get(3).expect("plan detail"));
    }
    details
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
        .call(|conn| {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {PREVIOUS_ON_BRANCH}"))?;
            Ok(stmt
                .query_map(rusqlite::params!["big", "main", 10_000], |r| r.get::<_, String>(3))?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .expect("plan");
    assert!(
        plan.iter().any(|step| step.contains("builds_ended_by_branch (project=? AND scm_branch=? AND id<?)")),
        "{plan:?}"
    );
}
