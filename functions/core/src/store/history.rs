//! History as people and programs ask for it: builds of one project or of all,
//! filtered by status, branch, trigger and text, newest first, a page at a time.
//!
//! Every page is a keyset range (`id < before`) read from an index that matches the
//! filter — all builds, or one project's, by status, branch or trigger (see
//! `sql/0011_history.sql`, `sql/0014_history_by_project_branch.sql`) — so its cost is
//! the page, not the history. Two filters besides the project read the range of one
//! and check the other row by row. Text search goes through the trigram index
//! `builds_text`, newest match first, and checks the other filters on each match: it
//! costs the matches it passes over, which for a rare project and a common word can
//! be many (`plans.rs` checks these plans).

use rusqlite::{ToSql, params_from_iter};

use super::{
    Store, StoreError,
    builds::{BuildPage, COLUMNS, build_from_row},
};
use crate::model::{BuildStatus, TriggerKind};

/// The shortest text search: the index finds substrings of three characters or more.
pub const MIN_SEARCH: usize = 3;

/// Which builds a history shows; every part is optional and they all must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub project: Option<String>,
    pub status: Option<BuildStatus>,
    /// The branch built (a pull request's source branch).
    pub branch: Option<String>,
    pub trigger: Option<TriggerKind>,
    /// Text found in the description or the commit message (at least [`MIN_SEARCH`]
    /// characters; the caller checks).
    pub text: Option<String>,
}

impl HistoryFilter {
    /// The `WHERE` conditions on `builds` (aliased `b`) and their values, in order.
    fn conditions(&self) -> (Vec<&'static str>, Vec<Box<dyn ToSql>>) {
        let mut conditions = Vec::new();
        let mut values: Vec<Box<dyn ToSql>> = Vec::new();
        if let Some(project) = &self.project {
            conditions.push("b.project = ?");
            values.push(Box::new(project.clone()));
        }
        if let Some(status) = self.status {
            conditions.push("b.status = ?");
            values.push(Box::new(status.as_str()));
        }
        if let Some(branch) = &self.branch {
            conditions.push("b.scm_branch = ?");
            values.push(Box::new(branch.clone()));
        }
        if let Some(trigger) = self.trigger {
            conditions.push("b.trigger_kind = ?");
            values.push(Box::new(trigger.as_str()));
        }
        (conditions, values)
    }
}

/// A finished build, as a project's trends draw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recent {
    pub id: i64,
    pub status: BuildStatus,
    /// How long it ran; `None` when it never started.
    pub duration_ms: Option<i64>,
}

/// `text` as an FTS5 phrase: the whole string, quotes doubled, matched as a substring.
fn phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Every column of `builds`, as `b.id, b.project, ...` (the text search joins another
/// table): spelled once, not at each page.
static QUALIFIED_COLUMNS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    COLUMNS.split(", ").map(|c| format!("b.{}", c.trim())).collect::<Vec<_>>().join(", ")
});

/// The query of [`Store::history`] and its values: `limit` + 1 builds (the one more
/// tells whether there is a next page) that `filter` selects, older than `before`.
pub(super) fn history_query(
    filter: &HistoryFilter,
    limit: u32,
    before: Option<i64>,
) -> (String, Vec<Box<dyn ToSql>>) {
    let (mut conditions, mut values) = filter.conditions();
    // With text, the bound goes to the text index, which then starts there.
    conditions.push(if filter.text.is_some() { "t.rowid < ?" } else { "b.id < ?" });
    values.push(Box::new(before.unwrap_or(i64::MAX)));
    let columns = &*QUALIFIED_COLUMNS;
    let sql = match &filter.text {
        // The text index leads: it yields its matches newest first.
        Some(text) => {
            values.insert(0, Box::new(phrase(text)));
            format!(
                "SELECT {columns} FROM builds_text t JOIN builds b ON b.id = t.rowid \
                 WHERE builds_text MATCH ? AND {} ORDER BY t.rowid DESC LIMIT ?",
                conditions.join(" AND ")
            )
        }
        None => format!(
            "SELECT {columns} FROM builds b WHERE {} ORDER BY b.id DESC LIMIT ?",
            conditions.join(" AND ")
        ),
    };
    values.push(Box::new(i64::from(limit) + 1));
    (sql, values)
}

impl Store {
    /// The builds `filter` selects, newest first, `limit` at a time, older than
    /// `before` if given.
    #[tracing::instrument(skip_all)]
    pub async fn history(
        &self,
        filter: HistoryFilter,
        limit: u32,
        before: Option<i64>,
    ) -> Result<BuildPage, StoreError> {
        self.call(move |conn| {
            let (sql, values) = history_query(&filter, limit, before);
            let builds = conn
                .prepare_cached(&sql)?
                .query_map(params_from_iter(values.iter().map(|v| v.as_ref())), build_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(BuildPage::cut(builds, limit))
        })
        .await
    }

    /// `project`'s newest `limit` finished builds, newest first.
    pub async fn recent_finished(&self, project: &str, limit: u32) -> Result<Vec<Recent>, StoreError> {
        let project = project.to_string();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, status, finished_at - started_at FROM builds WHERE project = ?1 \
                 AND status NOT IN ('queued', 'dispatched', 'running') ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(rusqlite::params![project, limit], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, Option<i64>>(2)?))
            })?;
            let mut recent = Vec::new();
            for row in rows {
                let (id, status, duration_ms) = row?;
                let status = status.parse().map_err(|e: crate::model::UnknownName| {
                    StoreError::Corrupt(format!("build {id}: {e}"))
                })?;
                recent.push(Recent { id, status, duration_ms });
            }
            Ok(recent)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::NewBuild, store::JournalMode};

    #[tokio::test]
    async fn text_search_finds_substrings_and_forgets_deleted_builds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("sparky.db"), JournalMode::Wal).await.expect("open");
        let mut ids = Vec::new();
        for (description, message) in [("push to main", "Fix the flux capacitor"), ("by hand", "")] {
            let new = NewBuild {
                project: "app".into(),
                description: Some(description.into()),
                commit_message: Some(message.into()).filter(|m: &String| !m.is_empty()),
                ..NewBuild::default()
            };
            ids.push(store.queue_build(new, 1000).await.expect("queue").build.id);
        }
        let search = |text: &str| {
            let filter = HistoryFilter { text: Some(text.into()), ..HistoryFilter::default() };
            let store = store.clone();
            async move {
                store
                    .history(filter, 10, None)
                    .await
                    .expect("search")
                    .builds
                    .iter()
                    .map(|b| b.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(search("FLUX cap").await, [ids[0]]);
        assert_eq!(search("y han").await, [ids[1]]);
        assert_eq!(search("\"quoted\"").await, Vec::<i64>::new());
        store.request_cancel(ids[0], 2000).await.expect("cancel");
        store.delete_builds(vec![ids[0]]).await.expect("delete");
        assert_eq!(search("flux").await, Vec::<i64>::new(), "a pruned build is not found");
    }
}
