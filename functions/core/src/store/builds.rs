//! Queueing, reading and pruning builds.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{
    Store, StoreError,
    events::{Change, record},
};
use crate::model::{Build, BuildStatus, NewBuild, Params, Reason, ScmRef, TriggerKind};

/// The columns [`build_from_row`] reads, in order.
pub(super) const COLUMNS: &str = "id, project, status, trigger_kind, params, description, \
     scm_url, scm_branch, scm_sha, parent_build, attempt, created_at, started_at, finished_at, \
     exit_code, error, cancel_requested, log_size, chain, report_error, retries_used, pull_request, \
     triggered_by, commit_message";

/// Live builds by status and project; served by the covering index
/// `builds_live_by_project` (migration 12).
pub(super) const LIVE_COUNTS: &str = "SELECT status, project, count(*) FROM builds \
     WHERE status IN ('queued', 'dispatched', 'running') GROUP BY status, project";

/// How the last build of project `?1` before build `?3` on branch `?2` (`NULL`: none
/// known) outside pull requests ended, canceled builds aside; served by the partial
/// index `builds_ended_by_branch` (migration 13), whose terms it repeats exactly.
pub(super) const PREVIOUS_ON_BRANCH: &str = "SELECT status FROM builds \
     WHERE project = ?1 AND scm_branch IS ?2 AND id < ?3 AND pull_number IS NULL \
     AND status IN ('succeeded', 'failed', 'timed_out', 'lost') ORDER BY id DESC LIMIT 1";

/// The same for pull request `?2`'s builds; a request has few (index `builds_by_pull`).
pub(super) const PREVIOUS_IN_PULL: &str = "SELECT status FROM builds \
     WHERE project = ?1 AND pull_number = ?2 AND id < ?3 \
     AND status IN ('succeeded', 'failed', 'timed_out', 'lost') ORDER BY id DESC LIMIT 1";

/// The newest build of each project that has builds, as the CTE `newest`: one index
/// search per project, the projects read from the counts kept per project (migration
/// 10), where `GROUP BY project` would read every row of the index.
pub(super) const LAST_BUILDS_FROM: &str = "WITH newest (id) AS ( \
       SELECT (SELECT max(id) FROM builds WHERE project = counted.project) \
       FROM project_builds AS counted WHERE counted.builds > 0)";

/// The newest build of project `?1` of each trigger kind, as the CTE `newest`, one
/// index search per kind (a loose index scan: the next kind is looked up in the index
/// after the last one).
pub(super) const LAST_BY_TRIGGER_FROM: &str = "WITH RECURSIVE kinds (kind) AS ( \
       SELECT min(trigger_kind) FROM builds WHERE project = ?1 \
       UNION ALL SELECT (SELECT min(trigger_kind) FROM builds WHERE project = ?1 AND trigger_kind > kind) \
       FROM kinds WHERE kind IS NOT NULL), \
     newest (id) AS (SELECT (SELECT max(id) FROM builds WHERE project = ?1 AND trigger_kind = kind) \
       FROM kinds WHERE kind IS NOT NULL)";

/// How many builds project `?1` has (kept by triggers, see migration 0010).
pub(super) const PROJECT_COUNT: &str = "SELECT builds FROM project_builds WHERE project = ?1";

/// The `?2` oldest builds of project `?1` that have ended.
pub(super) const OLDEST: &str = "SELECT id FROM (SELECT id, status FROM builds WHERE project = ?1 \
     ORDER BY id ASC LIMIT ?2) WHERE status NOT IN ('queued', 'dispatched', 'running') ORDER BY id ASC";

/// The projects that have queued builds.
pub(super) const QUEUED_PROJECTS: &str = "SELECT DISTINCT project FROM builds WHERE status = 'queued'";

/// Ids of project `?1`'s queued builds, oldest first.
pub(super) const QUEUED_IDS: &str =
    "SELECT id FROM builds WHERE status = 'queued' AND project = ?1 ORDER BY id";

/// Deleting a pruned build: its row (never a live one's), then its events and its
/// deliveries.
pub(super) const DELETE_BUILD: &str =
    "DELETE FROM builds WHERE id = ?1 AND status NOT IN ('queued', 'dispatched', 'running')";
pub(super) const DELETE_EVENTS: &str = "DELETE FROM events WHERE build_id = ?1";
pub(super) const DELETE_DELIVERIES: &str = "DELETE FROM deliveries WHERE build_id = ?1";

/// The result of queueing: the build, and whether this call created it (`false` when
/// an idempotency key matched an earlier build, which is returned instead).
#[derive(Debug)]
pub struct Inserted {
    pub build: Build,
    pub created: bool,
}

/// One page of a project's history, newest first.
#[derive(Debug)]
pub struct BuildPage {
    pub builds: Vec<Build>,
    /// Pass as `before` to get the next page; `None` on the last page.
    pub next_before: Option<i64>,
}

impl BuildPage {
    /// A page from up to `limit + 1` builds read newest first: one more than the page
    /// says there is a next page.
    pub(super) fn cut(mut builds: Vec<Build>, limit: u32) -> BuildPage {
        let next_before = if builds.len() > limit as usize {
            builds.truncate(limit as usize);
            builds.last().map(|b| b.id)
        } else {
            None
        };
        BuildPage { builds, next_before }
    }
}

pub(super) fn build_from_row(row: &Row<'_>) -> rusqlite::Result<Build> {
    let text_err = |index: usize, message: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, message.into())
    };
    let status: String = row.get(2)?;
    let trigger: String = row.get(3)?;
    let params: String = row.get(4)?;
    Ok(Build {
        id: row.get(0)?,
        project: row.get(1)?,
        status: status.parse().map_err(|e: crate::model::UnknownName| text_err(2, e.to_string()))?,
        trigger: trigger.parse().map_err(|e: crate::model::UnknownName| text_err(3, e.to_string()))?,
        params: serde_json::from_str::<Params>(&params).map_err(|e| text_err(4, e.to_string()))?,
        description: row.get(5)?,
        scm: ScmRef { url: row.get(6)?, branch: row.get(7)?, sha: row.get(8)? },
        parent_build: row.get(9)?,
        attempt: row.get(10)?,
        created_at: row.get(11)?,
        started_at: row.get(12)?,
        finished_at: row.get(13)?,
        exit_code: row.get(14)?,
        error: row.get(15)?,
        cancel_requested: row.get(16)?,
        log_size: row.get::<_, Option<i64>>(17)?.map(|n| n.max(0) as u64),
        chain: serde_json::from_str(&row.get::<_, String>(18)?).map_err(|e| text_err(18, e.to_string()))?,
        report_error: row.get(19)?,
        retries_used: row.get(20)?,
        pull_request: row
            .get::<_, Option<String>>(21)?
            .map(|text| serde_json::from_str(&text).map_err(|e| text_err(21, e.to_string())))
            .transpose()?,
        triggered_by: row.get(22)?,
        commit_message: row.get(23)?,
    })
}

pub(super) fn get(conn: &rusqlite::Connection, id: i64) -> Result<Option<Build>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM builds WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], build_from_row).optional()?)
}

impl Store {
    /// Queues a build, committed before this returns. With an idempotency key that was
    /// used before, returns the earlier build instead (`created: false`).
    #[tracing::instrument(skip_all, fields(project = %new.project))]
    pub(crate) async fn queue_build(&self, new: NewBuild, now: i64) -> Result<Inserted, StoreError> {
        self.write(move |tx| {
            if let Some(key) = &new.idempotency_key {
                let sql = format!("SELECT {COLUMNS} FROM builds WHERE idempotency_key = ?1");
                let earlier = tx.prepare_cached(&sql)?.query_row([key], build_from_row).optional()?;
                if let Some(build) = earlier {
                    return Ok(Inserted { build, created: false });
                }
            }
            let params =
                serde_json::to_string(&new.params).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let chain = serde_json::to_string(&new.chain).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let pull = new
                .pull_request
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.prepare_cached(
                "INSERT INTO builds (project, status, trigger_kind, params, description, scm_url, \
                 scm_branch, scm_sha, parent_build, idempotency_key, created_at, chain, pull_request, \
                 pull_number, triggered_by, commit_message) \
                 VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?
            .execute(params![
                new.project,
                new.trigger.unwrap_or(TriggerKind::Api).as_str(),
                params,
                new.description,
                new.scm.url,
                new.scm.branch,
                new.scm.sha,
                new.parent_build,
                new.idempotency_key,
                now,
                chain,
                pull,
                new.pull_request.as_ref().map(|p| p.number as i64),
                new.triggered_by,
                new.commit_message,
            ])?;
            let id = tx.last_insert_rowid();
            let build = get(tx, id)?.ok_or_else(|| StoreError::Corrupt("inserted build vanished".into()))?;
            record(
                tx,
                Change {
                    build_id: id,
                    project: &build.project,
                    from: None,
                    to: BuildStatus::Queued,
                    reason: Reason::Triggered,
                    attempt: 0,
                    at: now,
                },
            )?;
            Ok(Inserted { build, created: true })
        })
        .await
    }

    /// The running build whose job token hashes to `hash`.
    pub async fn running_build_by_token(&self, hash: &str) -> Result<Option<Build>, StoreError> {
        let hash = hash.to_string();
        self.call(move |conn| {
            let sql =
                format!("SELECT {COLUMNS} FROM builds WHERE job_token_hash = ?1 AND status = 'running'");
            Ok(conn.prepare_cached(&sql)?.query_row([hash], build_from_row).optional()?)
        })
        .await
    }

    /// One build by id.
    pub async fn build(&self, id: i64) -> Result<Option<Build>, StoreError> {
        self.call(move |conn| get(conn, id)).await
    }

    /// A project's builds, newest first, `limit` at a time, older than `before` if given.
    pub async fn project_builds(
        &self,
        project: &str,
        limit: u32,
        before: Option<i64>,
    ) -> Result<BuildPage, StoreError> {
        let project = project.to_string();
        self.call(move |conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM builds WHERE project = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
            );
            let builds = conn
                .prepare_cached(&sql)?
                .query_map(params![project, before.unwrap_or(i64::MAX), limit + 1], build_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(BuildPage::cut(builds, limit))
        })
        .await
    }

    /// Each project's newest build.
    pub async fn last_builds(&self) -> Result<HashMap<String, Build>, StoreError> {
        self.call(|conn| {
            let sql = format!("{LAST_BUILDS_FROM} SELECT {COLUMNS} FROM builds WHERE id IN newest");
            let builds =
                conn.prepare_cached(&sql)?.query_map([], build_from_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(builds.into_iter().map(|b| (b.project.clone(), b)).collect())
        })
        .await
    }

    /// A project's newest build of each trigger kind.
    pub async fn last_builds_by_trigger(&self, project: &str) -> Result<Vec<Build>, StoreError> {
        let project = project.to_string();
        self.call(move |conn| {
            let sql = format!(
                "{LAST_BY_TRIGGER_FROM} SELECT {COLUMNS} FROM builds WHERE id IN newest ORDER BY id DESC"
            );
            let builds = conn
                .prepare_cached(&sql)?
                .query_map([project], build_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(builds)
        })
        .await
    }

    /// The builds a build triggered (its downstream builds).
    pub async fn children(&self, parent: i64) -> Result<Vec<Build>, StoreError> {
        self.call(move |conn| {
            let sql = format!("SELECT {COLUMNS} FROM builds WHERE parent_build = ?1 ORDER BY id");
            let builds = conn
                .prepare_cached(&sql)?
                .query_map([parent], build_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(builds)
        })
        .await
    }

    /// Every build not yet finished, oldest first.
    pub async fn live_builds(&self) -> Result<Vec<Build>, StoreError> {
        self.call(|conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM builds WHERE status IN ('queued', 'dispatched', 'running') \
                 ORDER BY id ASC"
            );
            let builds =
                conn.prepare_cached(&sql)?.query_map([], build_from_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(builds)
        })
        .await
    }

    /// How many builds not yet finished each project has in each live status (for
    /// `/metrics`): read from the partial index of live builds alone, so it costs the
    /// live builds, not history.
    pub async fn live_counts(&self) -> Result<Vec<(String, BuildStatus, u64)>, StoreError> {
        self.call(|conn| {
            let mut counts = Vec::new();
            let mut stmt = conn.prepare_cached(LIVE_COUNTS)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let status: String = row.get(0)?;
                let status = status
                    .parse()
                    .map_err(|e: crate::model::UnknownName| StoreError::Corrupt(e.to_string()))?;
                counts.push((row.get(1)?, status, row.get::<_, i64>(2)?.max(0) as u64));
            }
            Ok(counts)
        })
        .await
    }

    /// Ids of `project`'s finished builds beyond the newest `keep`, oldest first. Costs
    /// what it finds, not the project's history: the project's count of builds is kept
    /// (table `project_builds`), so only the oldest rows beyond `keep` are read.
    pub async fn builds_to_prune(&self, project: &str, keep: u32) -> Result<Vec<i64>, StoreError> {
        let project = project.to_string();
        self.call(move |conn| {
            let count: i64 = conn
                .prepare_cached(PROJECT_COUNT)?
                .query_row([&project], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            let beyond = count - i64::from(keep);
            if beyond <= 0 {
                return Ok(Vec::new());
            }
            let ids = conn
                .prepare_cached(OLDEST)?
                .query_map(params![project, beyond], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(ids)
        })
        .await
    }

    /// Ids of `project`'s queued builds, oldest first.
    pub async fn queued_ids(&self, project: &str) -> Result<Vec<i64>, StoreError> {
        let project = project.to_string();
        self.call(move |conn| {
            let ids = conn
                .prepare_cached(QUEUED_IDS)?
                .query_map([project], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(ids)
        })
        .await
    }

    /// A project's finished builds, oldest first (deleting its history).
    pub async fn finished_builds(&self, project: &str) -> Result<Vec<i64>, StoreError> {
        let project = project.to_string();
        self.call(move |conn| {
            let ids = conn
                .prepare_cached(
                    "SELECT id FROM builds WHERE project = ?1 \
                     AND status NOT IN ('queued', 'dispatched', 'running') ORDER BY id ASC",
                )?
                .query_map([project], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(ids)
        })
        .await
    }

    /// The builds of `project` for pull request `number` older than `before` that have
    /// not ended.
    pub async fn live_pull_builds(
        &self,
        project: &str,
        number: u64,
        before: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let project = project.to_string();
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT id FROM builds WHERE project = ?1 AND pull_number = ?2 AND id < ?3 \
                     AND status IN ('queued', 'dispatched', 'running') ORDER BY id",
                )?
                .query_map(params![project, number as i64, before], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?)
        })
        .await
    }

    /// How the build before `build` on the same line of work last ended, canceled
    /// builds aside: the same pull request's builds for a request's build, else the
    /// builds of the same branch outside pull requests. A pull request's failure is not
    /// its target branch's, so the branch's next success is no fix.
    pub async fn previous_ending(&self, build: &Build) -> Result<Option<BuildStatus>, StoreError> {
        let (project, id) = (build.project.clone(), build.id);
        let pull = build.pull_request.as_ref().map(|p| p.number as i64);
        let branch = build.scm.branch.clone();
        self.call(move |conn| {
            let status: Option<String> = match pull {
                Some(number) => conn
                    .prepare_cached(PREVIOUS_IN_PULL)?
                    .query_row(params![project, number, id], |r| r.get(0))
                    .optional()?,
                None => conn
                    .prepare_cached(PREVIOUS_ON_BRANCH)?
                    .query_row(params![project, branch, id], |r| r.get(0))
                    .optional()?,
            };
            status
                .map(|s| s.parse().map_err(|e: crate::model::UnknownName| StoreError::Corrupt(e.to_string())))
                .transpose()
        })
        .await
    }

    /// Deletes the rows of builds whose reports and working directories are gone, with
    /// their events and deliveries.
    pub async fn delete_builds(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.write(move |tx| {
            let mut build = tx.prepare_cached(DELETE_BUILD)?;
            let mut events = tx.prepare_cached(DELETE_EVENTS)?;
            let mut deliveries = tx.prepare_cached(DELETE_DELIVERIES)?;
            for id in ids {
                if build.execute([id])? == 1 {
                    events.execute([id])?;
                    deliveries.execute([id])?;
                }
            }
            Ok(())
        })
        .await
    }
}

/// The projects that have queued builds.
pub(super) fn queued_projects(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let projects = conn
        .prepare_cached(QUEUED_PROJECTS)?
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(projects)
}
