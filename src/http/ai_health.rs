//! `/api/ai-health` (SPEC §16): the AI's figures over a window, from this
//! node's in-memory counters (`ai_health`), and the alert thresholds
//! admins set on them.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::ApiError;
use crate::ai_health::{MAX_WINDOW_MINUTES, METRICS};
use crate::state::AppState;
use crate::store::ai_alerts::{self, Threshold};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {
    minutes: Option<u32>,
}

fn window(minutes: u32) -> Result<u32, ApiError> {
    if !(1..=MAX_WINDOW_MINUTES).contains(&minutes) {
        return Err(ApiError::invalid("invalid_minutes", format!("minutes must be 1 to {MAX_WINDOW_MINUTES}")));
    }
    Ok(minutes)
}

/// `GET /api/ai-health?minutes=N` (default 15).
pub async fn health(query: web::Query<HealthQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let minutes = window(query.minutes.unwrap_or(crate::actors::ai_watch::CARD_MINUTES))?;
    Ok(HttpResponse::Ok().json(state.hub.ai_health.report(minutes)))
}

/// `GET /api/ai-health/alerts`.
pub async fn alerts(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let alerts = ai_alerts::list(&state.db).await?;
    Ok(HttpResponse::Ok().json(json!({ "alerts": alerts, "metrics": METRICS })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsBody {
    alerts: Vec<Threshold>,
}

/// `PUT /api/ai-health/alerts {"alerts":[{"metric","max","minutes"}]}`:
/// replaces every threshold (an empty list turns alerts off).
pub async fn set_alerts(body: web::Json<AlertsBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let alerts = body.into_inner().alerts;
    for (i, t) in alerts.iter().enumerate() {
        if !METRICS.contains(&t.metric.as_str()) {
            return Err(ApiError::invalid("invalid_metric", format!("metric must be one of {}", METRICS.join(", "))));
        }
        if alerts[..i].iter().any(|other| other.metric == t.metric) {
            return Err(ApiError::invalid("duplicate_metric", format!("{} has two thresholds", t.metric)));
        }
        if !t.max.is_finite() || t.max < 0.0 {
            return Err(ApiError::invalid("invalid_max", "max must be a number of 0 or more"));
        }
        window(u32::try_from(t.minutes).unwrap_or(0))?;
    }
    ai_alerts::replace(&state.db, &alerts).await?;
    Ok(HttpResponse::Ok().json(json!({ "alerts": ai_alerts::list(&state.db).await? })))
}
