//! The lifecycle's events: one row per status change, written in the same transaction
//! as the change ([`record`]), read in commit order by tools (`GET /api/v1/events`),
//! by build (its attempts), and by the follow-up sweep (terminal changes whose
//! report.json and pruning are not known to be done).

use rusqlite::{Row, params};

use super::{Store, StoreError};
use crate::model::{BuildStatus, ChangeFacts, Event, Reason};

/// Every column of `events`, then `$rest`: constants, so that the plan test
/// (`plans.rs`) explains the very queries that run.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT id, build_id, project, from_status, to_status, reason, attempt, at FROM events ",
            $rest
        )
    };
}

/// Events after a reader's cursor (`GET /api/v1/events`).
pub(super) const EVENTS_AFTER: &str = select_events!("WHERE id > ?1 ORDER BY id LIMIT ?2");
/// One build's events (its attempts, its report).
pub(super) const BUILD_EVENTS: &str = select_events!("WHERE build_id = ?1 ORDER BY id");
/// Terminal events whose follow-ups may not be done yet, read by every sweep pass.
pub(super) const PENDING_EVENTS: &str = select_events!("WHERE pending = 1 AND at < ?1 ORDER BY id LIMIT ?2");
/// Marks an event's follow-ups done.
pub(super) const FOLLOWED: &str = "UPDATE events SET pending = 0 WHERE id = ?1 AND pending = 1";
/// A build's facts for metrics, read at every start and end (see [`facts`]).
pub(super) const FACTS: &str = "SELECT trigger_kind, (SELECT max(at) FROM events WHERE build_id = ?1 \
     AND to_status = 'queued' AND from_status IS NOT 'dispatched'), started_at FROM builds WHERE id = ?1";

/// A status change about to be recorded.
pub(super) struct Change<'a> {
    pub build_id: i64,
    pub project: &'a str,
    pub from: Option<BuildStatus>,
    pub to: BuildStatus,
    pub reason: Reason,
    pub attempt: u32,
    pub at: i64,
}

/// Appends the event of `change`. A terminal change is marked pending until what must
/// follow it is done — but for a runner's result: its runner stored `report.json`
/// before, and pruning, the one thing left, is done again after every build anyway.
pub(super) fn record(tx: &rusqlite::Connection, change: Change<'_>) -> Result<Event, StoreError> {
    let pending = change.to.is_terminal() && change.reason != Reason::Finished;
    tx.prepare_cached(
        "INSERT INTO events (build_id, project, from_status, to_status, reason, attempt, at, pending) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        change.build_id,
        change.project,
        change.from.map(BuildStatus::as_str),
        change.to.as_str(),
        change.reason.as_str(),
        change.attempt,
        change.at,
        pending,
    ])?;
    let id = tx.last_insert_rowid();
    // Only starts and ends are timed and labeled by metrics: the other changes (a
    // dispatch, a return to the queue) spare the read.
    let counted = change.to == BuildStatus::Running || change.to.is_terminal();
    let facts = if counted { Some(facts(tx, change.build_id)?) } else { None };
    Ok(Event {
        id,
        build_id: change.build_id,
        project: change.project.to_string(),
        from: change.from,
        to: change.to,
        reason: change.reason,
        attempt: change.attempt,
        at: change.at,
        facts,
    })
}

/// The build's trigger, when it last entered the queue (queued, or queued again after
/// it ran: a build that went back before it ran has waited since it was queued) and
/// when its latest attempt started: its row by id, and its own few events by index.
fn facts(tx: &rusqlite::Connection, build_id: i64) -> Result<ChangeFacts, StoreError> {
    let (trigger, queued_at, started_at): (String, Option<i64>, Option<i64>) =
        tx.prepare_cached(FACTS)?.query_row([build_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let trigger =
        trigger.parse().map_err(|e: crate::model::UnknownName| StoreError::Corrupt(e.to_string()))?;
    Ok(ChangeFacts { trigger, queued_at: queued_at.unwrap_or_default(), started_at })
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    let text_err = |index: usize, message: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, message.into())
    };
    let status =
        |index: usize, text: String| text.parse::<BuildStatus>().map_err(|e| text_err(index, e.to_string()));
    let from: Option<String> = row.get(3)?;
    Ok(Event {
        id: row.get(0)?,
        build_id: row.get(1)?,
        project: row.get(2)?,
        from: from.map(|text| status(3, text)).transpose()?,
        to: status(4, row.get(4)?)?,
        reason: row
            .get::<_, String>(5)?
            .parse()
            .map_err(|e: crate::model::UnknownName| text_err(5, e.to_string()))?,
        attempt: row.get(6)?,
        at: row.get(7)?,
        facts: None,
    })
}

/// The events `sql` (one of the `select_events!` queries) selects with `params`.
fn select(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Event>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let events = stmt.query_map(params, event_from_row)?.collect::<Result<Vec<_>, _>>()?;
    Ok(events)
}

impl Store {
    /// Events with ids above `after`, oldest first, at most `limit`.
    pub async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.call(move |conn| select(conn, EVENTS_AFTER, params![after, limit])).await
    }

    /// One build's events, oldest first.
    pub async fn build_events(&self, build_id: i64) -> Result<Vec<Event>, StoreError> {
        self.call(move |conn| select(conn, BUILD_EVENTS, [build_id])).await
    }

    /// Terminal events recorded before `before` whose follow-ups are not known to be
    /// done, oldest first, at most `limit`.
    pub(crate) async fn pending_events(&self, before: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.call(move |conn| select(conn, PENDING_EVENTS, params![before, limit])).await
    }

    /// Records that what must follow these events is done.
    pub(crate) async fn followed(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write_relaxed(move |tx| {
            let mut stmt = tx.prepare_cached(FOLLOWED)?;
            for id in ids {
                stmt.execute([id])?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(any(test, feature = "testing"))]
impl Store {
    /// Tests: moves every event `ms` into the past, as if recorded that long ago.
    pub async fn age_events(&self, ms: i64) -> Result<(), StoreError> {
        self.write(move |tx| {
            tx.execute("UPDATE events SET at = at - ?1", [ms])?;
            Ok(())
        })
        .await
    }
}
