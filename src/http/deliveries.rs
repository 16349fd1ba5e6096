//! `GET /api/deliveries` (the outbox as a delivery log) and
//! `POST /api/deliveries/{id}/retry` (send a dead, failed or skipped one again).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiError;
use crate::sessions::page_params;
use crate::state::AppState;
use crate::protocol::rfc3339;

const STATUSES: &[&str] = &["pending", "delivered", "failed", "dead", "skipped"];

#[derive(Deserialize)]
pub struct DeliveriesQuery {
    status: Option<String>,
    event_type: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
}

pub async fn list(query: web::Query<DeliveriesQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (page, per_page) = page_params(query.page, query.per_page)?;
    let status = query.status.clone().filter(|s| !s.is_empty());
    if status.as_deref().is_some_and(|s| !STATUSES.contains(&s)) {
        return Err(ApiError::invalid("invalid_filter", "status must be pending, delivered, failed, dead or skipped"));
    }
    let event_type = query.event_type.clone().filter(|s| !s.is_empty());
    let client = state.db.get().await?;
    let filter = "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR event_type = $2)";
    let total: i64 = client
        .query_one(&format!("SELECT count(*) FROM outbox WHERE {filter}"), &[&status, &event_type])
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "SELECT id, event_type, status, attempts, next_attempt_at, last_error, last_status_code, session_id,
                        created_at, delivered_at, idempotency_key
                 FROM outbox WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
            ),
            &[&status, &event_type, &per_page, &((page - 1) * per_page)],
        )
        .await?;
    let deliveries: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, i64>(0),
                "event_type": r.get::<_, String>(1),
                "status": r.get::<_, String>(2),
                "attempts": r.get::<_, i32>(3),
                "next_attempt_at": rfc3339::format(&r.get(4)),
                "last_error": r.get::<_, Option<String>>(5),
                "last_status_code": r.get::<_, Option<i32>>(6),
                "session_id": r.get::<_, Option<Uuid>>(7),
                "created_at": rfc3339::format(&r.get(8)),
                "delivered_at": rfc3339::format_opt(r.get(9)),
                "idempotency_key": r.get::<_, String>(10),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "deliveries": deliveries, "total": total, "page": page, "per_page": per_page })))
}

/// Queues a dead, failed or skipped delivery again with a fresh attempt
/// budget. Its idempotency key is unchanged, so a target that did get an
/// earlier attempt ignores the repeat.
pub async fn retry(id: web::Path<i64>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = state.db.get().await?;
    let changed = client
        .execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
             WHERE id = $1 AND status IN ('dead', 'failed', 'skipped')",
            &[&*id],
        )
        .await?;
    if changed == 0 {
        let exists = client.query_opt("SELECT status FROM outbox WHERE id = $1", &[&*id]).await?;
        return Err(match exists {
            None => ApiError::NotFound("delivery"),
            Some(row) => ApiError::Conflict(format!("a {} delivery cannot be retried", row.get::<_, String>(0))),
        });
    }
    state.hub.notifier.wake();
    Ok(HttpResponse::Accepted().json(json!({ "id": *id, "status": "pending" })))
}
