//! The `outbox` table: the notifier's leases (`claim`) and the outcome of
//! each attempt, the deliveries view (the log of every notification and its
//! attempts) and the manual retry.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{StoreError, log_pages};
use crate::domain::listing::{LogCursor, PageRequest};
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
    /// What is (or was) sent, as stored.
    pub payload: serde_json::Value,
}

/// One page of deliveries, newest first, filtered by status and event type
/// (after `cursor` if given, else at the page's offset); and how many match
/// in all.
pub async fn page(
    db: &Db,
    status: Option<&str>,
    event_type: Option<&str>,
    page: PageRequest,
    cursor: Option<LogCursor>,
) -> Result<(Vec<DeliveryRow>, i64), StoreError> {
    let client = db.get().await?;
    let filter = "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR event_type = $2)";
    let total: i64 = client.query_one(&format!("SELECT count(*) FROM outbox WHERE {filter}"), &[&status, &event_type]).await?.get(0);
    let (at, id, offset) = log_pages::bounds(cursor, page);
    let rows = client
        .query(
            &format!(
                "SELECT id, event_type, status, attempts, next_attempt_at, last_error, last_status_code, session_id,
                        created_at, delivered_at, idempotency_key, payload
                 FROM outbox WHERE {filter} AND {} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
                log_pages::after("$5", "$6")
            ),
            &[&status, &event_type, &page.per_page, &offset, &at, &id],
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
            payload: r.get(11),
        })
        .collect();
    Ok((deliveries, total))
}

/// A delivery's event type; `NotFound` if there is none with this id.
pub async fn event_type(db: &Db, id: i64) -> Result<String, StoreError> {
    let row = db.get().await?.query_opt("SELECT event_type FROM outbox WHERE id = $1", &[&id]).await?;
    row.map(|r| r.get(0)).ok_or(StoreError::NotFound("delivery"))
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

/// An outbox row the notifier leased for one attempt.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub idempotency_key: String,
    pub session_id: Option<Uuid>,
    /// Including this one.
    pub attempts: i32,
}

/// Leases up to `limit` due rows for one attempt each: `attempts` goes up
/// and `next_attempt_at` moves `lease` ahead, so no other node takes them
/// meanwhile (`FOR UPDATE SKIP LOCKED`), and a row whose node died
/// mid-delivery comes due again when the lease runs out.
pub async fn claim(db: &Db, limit: i64, lease: std::time::Duration) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
             WHERE id IN (SELECT id FROM outbox WHERE status IN ('pending', 'failed') AND next_attempt_at <= now()
                          ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, event_type, payload, idempotency_key, session_id, attempts",
            &[&limit, &lease.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ClaimedDelivery {
            id: r.get(0),
            event_type: r.get(1),
            payload: r.get(2),
            idempotency_key: r.get(3),
            session_id: r.get(4),
            attempts: r.get(5),
        })
        .collect())
}

/// How one attempt ended, as stored.
pub enum AttemptResult<'a> {
    Delivered { status: u16 },
    /// Try again after `delay`.
    Failed { delay: std::time::Duration, status: Option<u16>, error: &'a str },
    /// Never again (unless retried by hand).
    Dead { status: Option<u16>, error: &'a str },
    /// The target is not configured.
    Skipped { reason: &'a str },
}

pub async fn record_attempt(db: &Db, id: i64, result: AttemptResult<'_>) -> Result<(), StoreError> {
    let client = db.get().await?;
    match result {
        AttemptResult::Delivered { status } => {
            client
                .execute(
                    "UPDATE outbox SET status = 'delivered', delivered_at = now(), last_status_code = $2, last_error = NULL, updated_at = now()
                     WHERE id = $1",
                    &[&id, &i32::from(status)],
                )
                .await?
        }
        AttemptResult::Failed { delay, status, error } => {
            client
                .execute(
                    "UPDATE outbox SET status = 'failed', next_attempt_at = now() + make_interval(secs => $2),
                        last_status_code = $3, last_error = $4, updated_at = now() WHERE id = $1",
                    &[&id, &delay.as_secs_f64(), &status.map(i32::from), &error],
                )
                .await?
        }
        AttemptResult::Dead { status, error } => {
            client
                .execute(
                    "UPDATE outbox SET status = 'dead', last_status_code = $2, last_error = $3, updated_at = now() WHERE id = $1",
                    &[&id, &status.map(i32::from), &error],
                )
                .await?
        }
        AttemptResult::Skipped { reason } => {
            client
                .execute("UPDATE outbox SET status = 'skipped', last_error = $2, updated_at = now() WHERE id = $1", &[&id, &reason])
                .await?
        }
    };
    Ok(())
}
