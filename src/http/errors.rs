//! `POST /api/errors` (automations report failures with an API key) and
//! `GET /api/errors` (the dashboard's errors view).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiError;
use crate::domain::listing::{LogCursor, PageRequest};
use crate::state::AppState;
use crate::store;
use crate::protocol::rfc3339;

const MAX_FIELD_CHARS: usize = 200;
const MAX_MESSAGE_CHARS: usize = 10_000;
/// Largest `details` object, serialised.
const MAX_DETAILS_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewError {
    source: String,
    #[serde(default)]
    workflow: Option<String>,
    message: String,
    #[serde(default)]
    details: Option<Value>,
    #[serde(default)]
    session_id: Option<Uuid>,
}

pub async fn create(body: web::Json<NewError>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let e = body.into_inner();
    let field = |v: &str, name: &str, max: usize| -> Result<(), ApiError> {
        if v.trim().is_empty() || v.chars().count() > max {
            return Err(ApiError::invalid("invalid_field", format!("{name} must be 1 to {max} characters")));
        }
        Ok(())
    };
    field(&e.source, "source", MAX_FIELD_CHARS)?;
    field(&e.message, "message", MAX_MESSAGE_CHARS)?;
    if let Some(w) = &e.workflow {
        field(w, "workflow", MAX_FIELD_CHARS)?;
    }
    if e.details.as_ref().is_some_and(|d| d.to_string().len() > MAX_DETAILS_BYTES) {
        return Err(ApiError::invalid("invalid_field", "details is too large"));
    }
    let error = store::errors::NewError {
        source: &e.source,
        workflow: e.workflow.as_deref(),
        message: &e.message,
        details: e.details.as_ref(),
        session_id: e.session_id,
    };
    let (id, created_at) = store::errors::insert(&state.db, error).await?;
    Ok(HttpResponse::Created().json(json!({ "id": id, "created_at": rfc3339::format(&created_at) })))
}

#[derive(Deserialize)]
pub struct ErrorsQuery {
    page: Option<i64>,
    per_page: Option<i64>,
    /// A `next_cursor` of this list: the page after it (keyset).
    cursor: Option<String>,
    source: Option<String>,
}

pub async fn list(query: web::Query<ErrorsQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let request = PageRequest::parse(query.page, query.per_page)?;
    let source = query.source.as_deref().filter(|s| !s.is_empty());
    let cursor = query.cursor.as_deref().map(LogCursor::parse).transpose()?;
    let (errors, total) = store::errors::page(&state.db, source, request, cursor).await?;
    let next_cursor = LogCursor::after_page(&errors, request, |e| (e.created_at, e.id)).map(|c| c.encode());
    Ok(HttpResponse::Ok().json(json!({
        "errors": errors, "total": total, "page": request.page, "per_page": request.per_page, "next_cursor": next_cursor,
    })))
}
