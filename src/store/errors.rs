//! `errors`: failures reported by the hub itself (agent errors, skipped
//! webhook messages) and by automations (`POST /api/errors`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{StoreError, log_pages};
use crate::domain::listing::{LogCursor, PageRequest};
use crate::postgres::Db;
use crate::protocol::rfc3339;

/// A failure to record.
pub struct NewError<'a> {
    pub source: &'a str,
    pub workflow: Option<&'a str>,
    pub message: &'a str,
    pub details: Option<&'a Value>,
    pub session_id: Option<Uuid>,
}

/// Stores a failure; a `session_id` that names no session is dropped rather
/// than refused (the report matters more). Returns its id and time.
pub async fn insert(db: &Db, error: NewError<'_>) -> Result<(i64, DateTime<Utc>), StoreError> {
    let row = db
        .get()
        .await?
        .query_one(
            "INSERT INTO errors (source, workflow, message, details, session_id)
             VALUES ($1, $2, $3, $4, (SELECT id FROM sessions WHERE id = $5))
             RETURNING id, created_at",
            &[&error.source, &error.workflow, &error.message, &error.details, &error.session_id],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// A recorded failure, as the errors view shows it.
#[derive(Debug, Serialize)]
pub struct ErrorRow {
    pub id: i64,
    pub source: String,
    pub workflow: Option<String>,
    pub message: String,
    pub details: Option<Value>,
    pub session_id: Option<Uuid>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// One page of failures, newest first, optionally of one `source` (after
/// `cursor` if given, else at the page's offset); and how many there are
/// in all.
pub async fn page(db: &Db, source: Option<&str>, page: PageRequest, cursor: Option<LogCursor>) -> Result<(Vec<ErrorRow>, i64), StoreError> {
    let client = db.get().await?;
    let total: i64 = client.query_one("SELECT count(*) FROM errors WHERE $1::text IS NULL OR source = $1", &[&source]).await?.get(0);
    let (at, id, offset) = log_pages::bounds(cursor, page);
    let rows = client
        .query(
            &format!(
                "SELECT id, source, workflow, message, details, session_id, created_at FROM errors
                 WHERE ($1::text IS NULL OR source = $1) AND {} ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
                log_pages::after("$4", "$5")
            ),
            &[&source, &page.per_page, &offset, &at, &id],
        )
        .await?;
    let errors = rows
        .iter()
        .map(|r| ErrorRow {
            id: r.get(0),
            source: r.get(1),
            workflow: r.get(2),
            message: r.get(3),
            details: r.get(4),
            session_id: r.get(5),
            created_at: r.get(6),
        })
        .collect();
    Ok((errors, total))
}
