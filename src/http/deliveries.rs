//! `GET /api/deliveries` (the outbox as a delivery log) and
//! `POST /api/deliveries/{id}/retry` (send a dead, failed or skipped one again).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::domain::listing::{LogCursor, PageRequest};
use crate::state::AppState;
use crate::store;

const STATUSES: &[&str] = &["pending", "delivered", "failed", "dead", "skipped"];

#[derive(Deserialize)]
pub struct DeliveriesQuery {
    status: Option<String>,
    event_type: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
    /// A `next_cursor` of this list: the page after it (keyset).
    cursor: Option<String>,
}

pub async fn list(query: web::Query<DeliveriesQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let request = PageRequest::parse(query.page, query.per_page)?;
    let status = query.status.clone().filter(|s| !s.is_empty());
    if status.as_deref().is_some_and(|s| !STATUSES.contains(&s)) {
        return Err(ApiError::invalid("invalid_filter", "status must be pending, delivered, failed, dead or skipped"));
    }
    let event_type = query.event_type.as_deref().filter(|s| !s.is_empty());
    let cursor = query.cursor.as_deref().map(LogCursor::parse).transpose()?;
    let (deliveries, total) = store::deliveries::page(&state.db, status.as_deref(), event_type, request, cursor).await?;
    let next_cursor = LogCursor::after_page(&deliveries, request, |d| (d.created_at, d.id)).map(|c| c.encode());
    Ok(HttpResponse::Ok().json(json!({
        "deliveries": deliveries, "total": total, "page": request.page, "per_page": request.per_page, "next_cursor": next_cursor,
    })))
}

/// Queues a dead, failed or skipped delivery again with a fresh attempt
/// budget. Its idempotency key is unchanged, so a target that did get an
/// earlier attempt ignores the repeat. A delivery whose target is still not
/// configured is refused (409, naming the setting): queueing it would only
/// skip it again.
pub async fn retry(id: web::Path<i64>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let event_type = store::deliveries::event_type(&state.db, *id).await?;
    if let Some(reason) = crate::delivery::unconfigured(&state.config, &event_type) {
        return Err(ApiError::Conflict(format!("this delivery cannot be sent: {reason}; set it and restart, then retry")));
    }
    store::deliveries::retry(&state.db, *id).await?;
    state.hub.notifier.wake();
    Ok(HttpResponse::Accepted().json(json!({ "id": *id, "status": "pending" })))
}
