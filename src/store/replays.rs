//! The `replays` table (SPEC §16): who replayed which sessions, and what
//! each turn's original and replayed answers were.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::StoreError;
use crate::postgres::Db;
use crate::protocol::{rfc3339, rfc3339_opt};

/// A replay as `GET /api/replays/{id}` shows it; `result` holds `sessions`
/// and `summary`.
#[derive(Debug, Serialize)]
pub struct ReplayRow {
    pub id: Uuid,
    pub status: String,
    pub created_by: String,
    pub note: Option<String>,
    pub session_ids: Vec<Uuid>,
    #[serde(flatten)]
    pub result: Value,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339_opt")]
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, status, created_by, note, session_ids, result, created_at, finished_at";

fn from_row(r: &tokio_postgres::Row) -> ReplayRow {
    ReplayRow {
        id: r.get(0),
        status: r.get(1),
        created_by: r.get(2),
        note: r.get(3),
        session_ids: r.get(4),
        result: r.get(5),
        created_at: r.get(6),
        finished_at: r.get(7),
    }
}

pub async fn create(db: &Db, id: Uuid, created_by: &str, note: Option<&str>, session_ids: &[Uuid]) -> Result<ReplayRow, StoreError> {
    let row = db
        .get()
        .await?
        .query_one(
            &format!("INSERT INTO replays (id, created_by, note, session_ids) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"),
            &[&id, &created_by, &note, &session_ids],
        )
        .await?;
    Ok(from_row(&row))
}

/// Stores the result so far; `finished` ends the replay with `status`.
pub async fn save(db: &Db, id: Uuid, result: &Value, finished: Option<&str>) -> Result<(), StoreError> {
    db.get()
        .await?
        .execute(
            "UPDATE replays SET result = $2, status = COALESCE($3, status), finished_at = CASE WHEN $3::text IS NULL THEN NULL ELSE now() END WHERE id = $1",
            &[&id, result, &finished],
        )
        .await?;
    Ok(())
}

pub async fn get(db: &Db, id: Uuid) -> Result<Option<ReplayRow>, StoreError> {
    let row = db.get().await?.query_opt(&format!("SELECT {COLUMNS} FROM replays WHERE id = $1"), &[&id]).await?;
    Ok(row.as_ref().map(from_row))
}

/// The newest replays first.
pub async fn list(db: &Db, limit: i64) -> Result<Vec<ReplayRow>, StoreError> {
    let rows = db.get().await?.query(&format!("SELECT {COLUMNS} FROM replays ORDER BY created_at DESC LIMIT $1"), &[&limit]).await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Replays still running (none should be after a restart: they are ended
/// as failed when a node starts).
pub async fn fail_running(db: &Db) -> Result<u64, StoreError> {
    Ok(db
        .get()
        .await?
        .execute("UPDATE replays SET status = 'failed', finished_at = now(), result = jsonb_set(result, '{error}', '\"the server restarted\"') WHERE status = 'running'", &[])
        .await?)
}
