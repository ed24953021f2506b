//! Deliveries (see `sql/0007_deliveries.sql`): derived from lifecycle events past the
//! outbox's cursor, claimed by one process at a time for a while, and settled as sent,
//! retried later, or failed.

use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError};

/// A delivery to derive from an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    pub event_id: i64,
    pub build_id: i64,
    pub target: String,
    pub payload: String,
}

/// A stored delivery.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    pub id: i64,
    pub event_id: i64,
    pub build_id: i64,
    pub target: String,
    pub payload: String,
    pub state: String,
    pub attempts: u32,
    pub next_at: i64,
    pub outcome: Option<String>,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

/// How a try went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    Sent(String),
    /// Try again at this time.
    Retry {
        at: i64,
        outcome: String,
    },
    /// The target asked to be left alone until `until` (a rate limit): this one and
    /// every other delivery to it wait.
    Held {
        until: i64,
        outcome: String,
    },
    Failed(String),
}

const COLUMNS: &str =
    "id, event_id, build_id, target, payload, state, attempts, next_at, outcome, created_at, done_at";

fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: row.get(0)?,
        event_id: row.get(1)?,
        build_id: row.get(2)?,
        target: row.get(3)?,
        payload: row.get(4)?,
        state: row.get(5)?,
        attempts: row.get(6)?,
        next_at: row.get(7)?,
        outcome: row.get(8)?,
        created_at: row.get(9)?,
        done_at: row.get(10)?,
    })
}

impl Store {
    /// Where the outbox's reading of the events stands.
    pub async fn outbox_cursor(&self) -> Result<i64, StoreError> {
        self.call(|conn| {
            Ok(conn.prepare_cached("SELECT after FROM outbox WHERE id = 1")?.query_row([], |r| r.get(0))?)
        })
        .await
    }

    /// Records the deliveries derived from the events up to `upto` (read after `from`),
    /// and moves the cursor there, unless another process moved it past already. A
    /// delivery made before (same event and target) is not made again; a new one makes
    /// the older ones of its build and target that nobody is sending moot.
    pub async fn derive_deliveries(
        &self,
        from: i64,
        upto: i64,
        deliveries: Vec<NewDelivery>,
        now: i64,
    ) -> Result<usize, StoreError> {
        // Not waited for on disk: the events stay, and deliveries a power cut undid are
        // derived from them again (one per event and target).
        self.write_relaxed(move |tx| {
            let mut made = 0;
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO deliveries (event_id, build_id, target, payload, next_at, created_at) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?5 WHERE EXISTS (SELECT 1 FROM builds WHERE id = ?2)",
            )?;
            let mut supersede = tx.prepare_cached(
                "UPDATE deliveries SET state = 'superseded', done_at = ?4 \
                 WHERE build_id = ?1 AND target = ?2 AND state = 'pending' AND event_id < ?3 \
                 AND (claimed_until IS NULL OR claimed_until < ?4)",
            )?;
            for d in deliveries {
                if insert.execute(params![d.event_id, d.build_id, d.target, d.payload, now])? == 1 {
                    made += 1;
                    supersede.execute(params![d.build_id, d.target, d.event_id, now])?;
                }
            }
            tx.prepare_cached("UPDATE outbox SET after = ?2 WHERE id = 1 AND after = ?1")?
                .execute(params![from, upto])?;
            Ok(made)
        })
        .await
    }

    /// Takes up to `limit` deliveries that are due and that no one is sending, for
    /// `lease_ms`: for each build and target only the oldest pending one, so that they
    /// arrive in order.
    pub async fn claim_deliveries(
        &self,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        // Not waited for on disk: a claim a power cut undid is taken again.
        self.write_relaxed(move |tx| {
            let sql = format!(
                "UPDATE deliveries SET claimed_until = ?2 WHERE id IN ( \
                   SELECT d.id FROM deliveries d WHERE d.state = 'pending' AND d.next_at <= ?1 \
                   AND (d.claimed_until IS NULL OR d.claimed_until < ?1) \
                   AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.build_id = d.build_id \
                     AND o.target = d.target AND o.state = 'pending' AND o.id < d.id) \
                   AND NOT EXISTS (SELECT 1 FROM delivery_holds h WHERE h.target = d.target AND h.until > ?1) \
                   ORDER BY d.id LIMIT ?3) \
                 RETURNING {COLUMNS}"
            );
            let mut claimed = tx
                .prepare_cached(&sql)?
                .query_map(params![now, now + lease_ms, limit], delivery_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            claimed.sort_by_key(|d| d.id);
            Ok(claimed)
        })
        .await
    }

    /// Records how a try of delivery `id` went, and lets go of it.
    pub async fn settle_delivery(&self, id: i64, settle: Settle, now: i64) -> Result<(), StoreError> {
        self.write(move |tx| {
            let (state, next_at, outcome, done_at) = match settle {
                Settle::Sent(outcome) => ("sent", None, outcome, Some(now)),
                Settle::Retry { at, outcome } => ("pending", Some(at), outcome, None),
                Settle::Held { until, outcome } => {
                    tx.prepare_cached(
                        "INSERT INTO delivery_holds (target, until) \
                         SELECT target, ?2 FROM deliveries WHERE id = ?1 \
                         ON CONFLICT (target) DO UPDATE SET until = MAX(until, excluded.until)",
                    )?
                    .execute(params![id, until])?;
                    ("pending", Some(until), outcome, None)
                }
                Settle::Failed(outcome) => ("failed", None, outcome, Some(now)),
            };
            tx.prepare_cached(
                "UPDATE deliveries SET state = ?2, attempts = attempts + 1, next_at = COALESCE(?3, next_at), \
                 outcome = ?4, done_at = ?5, claimed_until = NULL WHERE id = ?1",
            )?
            .execute(params![id, state, next_at, outcome, done_at])?;
            Ok(())
        })
        .await
    }

    /// When the next pending delivery is due, if any is.
    pub async fn next_delivery_at(&self) -> Result<Option<i64>, StoreError> {
        self.call(|conn| {
            Ok(conn
                .prepare_cached("SELECT MIN(next_at) FROM deliveries WHERE state = 'pending'")?
                .query_row([], |r| r.get(0))
                .optional()?
                .flatten())
        })
        .await
    }

    /// A build's deliveries, oldest first.
    pub async fn build_deliveries(&self, build_id: i64) -> Result<Vec<Delivery>, StoreError> {
        self.call(move |conn| {
            let sql = format!("SELECT {COLUMNS} FROM deliveries WHERE build_id = ?1 ORDER BY id");
            Ok(conn
                .prepare_cached(&sql)?
                .query_map([build_id], delivery_from_row)?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
