//! `outbox` as the deliveries view sees it: the log of every notification
//! and its attempts, and the manual retry. (The notifier's own claims and
//! outcomes move here next.)

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use crate::postgres::Db;
use crate::protocol::{rfc3339, rfc3339_opt};

/// One notification and how its delivery went.
#[derive(Debug, Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    #[serde(with = "rfc3339")]
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub last_status_code: Option<i32>,
    pub session_id: Option<Uuid>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339_opt")]
    pub delivered_at: Option<DateTime<Utc>>,
    pub idempotency_key: String,
}

/// One page of deliveries, newest first, filtered by status and event type;
/// and how many match in all.
pub async fn page(
    db: &Db,
    status: Option<&str>,
    event_type: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DeliveryRow>, i64), StoreError> {
    let client = db.get().await?;
    let filter = "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR event_type = $2)";
    let total: i64 = client.query_one(&format!("SELECT count(*) FROM outbox WHERE {filter}"), &[&status, &event_type]).await?.get(0);
    let rows = client
        .query(
            &format!(
                "SELECT id, event_type, status, attempts, next_attempt_at, last_error, last_status_code, session_id,
                        created_at, delivered_at, idempotency_key
                 FROM outbox WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
            ),
            &[&status, &event_type, &limit, &offset],
        )
        .await?;
    let deliveries = rows
        .iter()
        .map(|r| DeliveryRow {
            id: r.get(0),
            event_type: r.get(1),
            status: r.get(2),
            attempts: r.get(3),
            next_attempt_at: r.get(4),
            last_error: r.get(5),
            last_status_code: r.get(6),
            session_id: r.get(7),
            created_at: r.get(8),
            delivered_at: r.get(9),
            idempotency_key: r.get(10),
        })
        .collect();
    Ok((deliveries, total))
}

/// Queues a dead, failed or skipped delivery again with a fresh attempt
/// budget (same idempotency key). `NotFound`, or `Conflict` for a delivery
/// in another state.
pub async fn retry(db: &Db, id: i64) -> Result<(), StoreError> {
    let client = db.get().await?;
    let changed = client
        .execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
             WHERE id = $1 AND status IN ('dead', 'failed', 'skipped')",
            &[&id],
        )
        .await?;
    if changed == 0 {
        let exists = client.query_opt("SELECT status FROM outbox WHERE id = $1", &[&id]).await?;
        return Err(match exists {
            None => StoreError::NotFound("delivery"),
            Some(row) => StoreError::Conflict(format!("a {} delivery cannot be retried", row.get::<_, String>(0))),
        });
    }
    Ok(())
}
