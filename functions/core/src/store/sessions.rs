//! People's sessions: created at login, looked up by the hash of the cookie's value,
//! ended at logout or when they expire (expired ones are deleted as new ones begin).

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

/// A live session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id_hash: String,
    /// The token the session's forms carry.
    pub csrf: String,
    pub expires_at: i64,
}

impl Store {
    /// Records a new session; forgets the expired ones.
    pub async fn create_session(&self, session: Session, now: i64) -> Result<(), StoreError> {
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?.execute([now])?;
            tx.prepare_cached(
                "INSERT INTO sessions (id_hash, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![session.id_hash, session.csrf, now, session.expires_at])?;
            Ok(())
        })
        .await
    }

    /// The session whose cookie hashes to `id_hash`, if it has not expired by `now`.
    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let id_hash = id_hash.to_string();
        self.call(move |conn| {
            let session = conn
                .prepare_cached(
                    "SELECT id_hash, csrf, expires_at FROM sessions WHERE id_hash = ?1 AND expires_at > ?2",
                )?
                .query_row(params![id_hash, now], |r| {
                    Ok(Session { id_hash: r.get(0)?, csrf: r.get(1)?, expires_at: r.get(2)? })
                })
                .optional()?;
            Ok(session)
        })
        .await
    }

    /// Ends a session (logout).
    pub async fn end_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let id_hash = id_hash.to_string();
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?.execute([id_hash])?;
            Ok(())
        })
        .await
    }
}
