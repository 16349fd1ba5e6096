//! `GET /health` (is the database reachable?) and `GET /metrics` (Prometheus
//! text from the process-wide recorder).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// A health check that takes longer than this reports the database as down.
const HEALTH_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// `"nats"`: `connected`, `disconnected` (the node serves what it runs and
/// reconnects by itself) or `disabled` (a single node); `"node_id"` on a
/// cluster. A node off NATS still answers 200: it keeps serving its own
/// conversations, and a load balancer should not take it out for that.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let cluster = state.hub.cluster();
    let nats = match cluster {
        None => "disabled",
        Some(c) if c.bus().is_connected() => "connected",
        Some(_) => "disconnected",
    };
    let node_id = cluster.map(|c| c.node_id().to_owned());
    let probe = crate::store::ping(&state.db);
    match tokio::time::timeout(HEALTH_DB_TIMEOUT, probe).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({ "status": "ok", "database": "ok", "nats": nats, "node_id": node_id })),
        outcome => {
            let reason = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            tracing::warn!(%reason, "health check: database unreachable");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "unavailable", "database": "unreachable", "nats": nats, "node_id": node_id }))
        }
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
