//! Site routes. Public: `GET /api/sites/{key}/public`, the widget's settings.
//! (The admin routes for managing sites arrive with the staff-side work.)

use actix_web::{HttpResponse, web};

use super::ApiError;
use crate::state::AppState;

/// Longest site key (matches the column's CHECK).
const MAX_KEY_CHARS: usize = 64;

pub async fn public_settings(key: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if key.len() > MAX_KEY_CHARS {
        return Err(ApiError::NotFound("site"));
    }
    let site = state.sites.find(&state.db, &key).await?.ok_or(ApiError::NotFound("site"))?;
    let mut settings = serde_json::to_value(&*site).map_err(|e| ApiError::Internal(e.into()))?;
    // What the widget may upload, so it can say so before trying.
    settings["attachments"] = serde_json::json!({ "max_bytes": state.attachments.max_bytes, "types": state.attachments.allowed() });
    Ok(HttpResponse::Ok().json(settings))
}
