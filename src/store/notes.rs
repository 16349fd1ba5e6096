//! `session_notes`: private notes staff leave on a conversation. They are
//! shown to staff only: never sent to the visitor, a channel, an agent or
//! an export.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use crate::postgres::Db;
use crate::protocol::rfc3339;

#[derive(Debug, Serialize)]
pub struct NoteRow {
    pub id: Uuid,
    /// The author's username (`null` once the user is deleted).
    pub author: Option<String>,
    pub text: String,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// Adds a note; `NotFound` if the session does not exist.
pub async fn insert(db: &Db, session_id: Uuid, author_id: Uuid, text: &str) -> Result<NoteRow, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            "WITH note AS (
                INSERT INTO session_notes (id, session_id, author_id, text)
                SELECT $1, s.id, $3, $4 FROM sessions s WHERE s.id = $2
                RETURNING id, author_id, text, created_at)
             SELECT note.id, u.username, note.text, note.created_at FROM note LEFT JOIN users u ON u.id = note.author_id",
            &[&Uuid::new_v4(), &session_id, &author_id, &text],
        )
        .await?
        .ok_or(StoreError::NotFound("session"))?;
    Ok(NoteRow { id: row.get(0), author: row.get(1), text: row.get(2), created_at: row.get(3) })
}

/// A session's notes, oldest first.
pub async fn list(db: &Db, session_id: Uuid) -> Result<Vec<NoteRow>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(
            "SELECT n.id, u.username, n.text, n.created_at FROM session_notes n LEFT JOIN users u ON u.id = n.author_id
             WHERE n.session_id = $1 ORDER BY n.created_at, n.id",
            &[&session_id],
        )
        .await?;
    Ok(rows.iter().map(|r| NoteRow { id: r.get(0), author: r.get(1), text: r.get(2), created_at: r.get(3) }).collect())
}
