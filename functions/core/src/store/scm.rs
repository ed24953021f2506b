//! SCM polling state. A poll is claimed in the store before `git ls-remote` runs, so
//! that several trigger processes ticking at once poll each repository once; failures
//! push the next poll back (backoff) without holding up other projects. What a poll
//! compares against is the heads the last poll saw: a ref that disappeared is
//! forgotten, so it is new again when it comes back.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

/// A poll this process may run now: the heads seen last time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollClaim {
    pub heads: BTreeMap<String, String>,
    pub failures: u32,
    /// How many polls of the project were recorded before this one. A claim taken
    /// again before this poll is recorded (the poll died, or recording it failed)
    /// carries the same number, so it can tell the builds it already queued.
    pub number: i64,
}

/// What the UI shows of a project's polling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollState {
    pub url: String,
    pub checked_at: Option<i64>,
    pub ok_at: Option<i64>,
    pub due_at: i64,
    pub failures: u32,
    pub last_error: Option<String>,
    /// `(ref, sha, seen_at)`, by ref name.
    pub heads: Vec<(String, String, i64)>,
}

impl Store {
    /// Claims `project`'s poll if it is due and nobody else is polling it, holding it
    /// for `hold_ms`. A changed URL starts afresh (the old heads mean nothing).
    pub async fn claim_poll(
        &self,
        project: &str,
        url: &str,
        now: i64,
        hold_ms: i64,
    ) -> Result<Option<PollClaim>, StoreError> {
        let (project, url) = (project.to_string(), url.to_string());
        self.write(move |tx| {
            let known: Option<String> = tx
                .prepare_cached("SELECT url FROM scm_polls WHERE project = ?1")?
                .query_row([&project], |r| r.get(0))
                .optional()?;
            if known.as_deref() != Some(url.as_str()) {
                tx.prepare_cached("DELETE FROM scm_heads WHERE project = ?1")?.execute([&project])?;
                tx.prepare_cached(
                    "INSERT INTO scm_polls (project, url) VALUES (?1, ?2) \
                     ON CONFLICT (project) DO UPDATE SET url = ?2, due_at = 0, busy_until = 0, \
                     failures = 0, last_error = NULL, checked_at = NULL, ok_at = NULL",
                )?
                .execute(params![project, url])?;
            }
            let claimed = tx
                .prepare_cached(
                    "UPDATE scm_polls SET busy_until = ?2 \
                     WHERE project = ?1 AND due_at <= ?3 AND busy_until <= ?3",
                )?
                .execute(params![project, now + hold_ms, now])?;
            if claimed == 0 {
                return Ok(None);
            }
            let (failures, number) = tx
                .prepare_cached("SELECT failures, polls FROM scm_polls WHERE project = ?1")?
                .query_row([&project], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let heads = tx
                .prepare_cached("SELECT ref_name, sha FROM scm_heads WHERE project = ?1")?
                .query_map([&project], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<BTreeMap<String, String>, _>>()?;
            Ok(Some(PollClaim { heads, failures, number }))
        })
        .await
    }

    /// Records a successful poll, due again at the next tick: `heads` replace the heads
    /// known before, so a ref missing from them is forgotten (a deleted branch).
    pub async fn poll_succeeded(
        &self,
        project: &str,
        heads: Vec<(String, String)>,
        now: i64,
    ) -> Result<(), StoreError> {
        let project = project.to_string();
        self.write(move |tx| {
            let known = tx
                .prepare_cached("SELECT ref_name FROM scm_heads WHERE project = ?1")?
                .query_map([&project], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut forget =
                tx.prepare_cached("DELETE FROM scm_heads WHERE project = ?1 AND ref_name = ?2")?;
            for name in known.iter().filter(|name| !heads.iter().any(|(seen, _)| seen == *name)) {
                forget.execute(params![project, name])?;
            }
            let mut upsert = tx.prepare_cached(
                "INSERT INTO scm_heads (project, ref_name, sha, seen_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (project, ref_name) DO UPDATE SET sha = ?3, seen_at = ?4 WHERE sha != ?3",
            )?;
            for (name, sha) in heads {
                upsert.execute(params![project, name, sha, now])?;
            }
            tx.prepare_cached(
                "UPDATE scm_polls SET due_at = 0, busy_until = 0, checked_at = ?2, ok_at = ?2, \
                 failures = 0, last_error = NULL, polls = polls + 1 WHERE project = ?1",
            )?
            .execute(params![project, now])?;
            Ok(())
        })
        .await
    }

    /// Records a failed poll; the project is not polled again before `retry_at`.
    pub async fn poll_failed(
        &self,
        project: &str,
        error: String,
        now: i64,
        retry_at: i64,
    ) -> Result<(), StoreError> {
        let project = project.to_string();
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE scm_polls SET due_at = ?4, busy_until = 0, checked_at = ?3, \
                 failures = failures + 1, last_error = ?2 WHERE project = ?1",
            )?
            .execute(params![project, error, now, retry_at])?;
            Ok(())
        })
        .await
    }

    /// A project's polling state, if it was ever polled.
    pub async fn poll_state(&self, project: &str) -> Result<Option<PollState>, StoreError> {
        let project = project.to_string();
        self.call(move |conn| {
            let state = conn
                .prepare_cached(
                    "SELECT url, checked_at, ok_at, due_at, failures, last_error FROM scm_polls WHERE project = ?1",
                )?
                .query_row([&project], |r| {
                    Ok(PollState {
                        url: r.get(0)?,
                        checked_at: r.get(1)?,
                        ok_at: r.get(2)?,
                        due_at: r.get(3)?,
                        failures: r.get(4)?,
                        last_error: r.get(5)?,
                        heads: Vec::new(),
                    })
                })
                .optional()?;
            let Some(mut state) = state else { return Ok(None) };
            state.heads = conn
                .prepare_cached("SELECT ref_name, sha, seen_at FROM scm_heads WHERE project = ?1 ORDER BY ref_name")?
                .query_map([&project], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(state))
        })
        .await
    }
}
