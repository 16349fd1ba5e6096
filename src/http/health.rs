//! `GET /health` (is the database reachable?) and `GET /metrics` (Prometheus
//! text from the process-wide recorder).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// A health check that takes longer than this reports the database as down.
const HEALTH_DB_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let probe = crate::store::ping(&state.db);
    match tokio::time::timeout(HEALTH_DB_TIMEOUT, probe).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({ "status": "ok", "database": "ok" })),
        outcome => {
            let reason = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            tracing::warn!(%reason, "health check: database unreachable");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "unavailable", "database": "unreachable" }))
        }
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
