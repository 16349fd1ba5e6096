//! `POST /api/errors` (automations report failures with an API key) and
//! `GET /api/errors` (the dashboard's errors view).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiError;
use crate::sessions::page_params;
use crate::state::AppState;
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
    let client = state.db.get().await?;
    // An unknown session id is kept out rather than refused: the report matters more.
    let session_id = match e.session_id {
        Some(id) => client.query_opt("SELECT id FROM sessions WHERE id = $1", &[&id]).await?.map(|r| r.get::<_, Uuid>(0)),
        None => None,
    };
    let row = client
        .query_one(
            "INSERT INTO errors (source, workflow, message, details, session_id) VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at",
            &[&e.source, &e.workflow, &e.message, &e.details, &session_id],
        )
        .await?;
    Ok(HttpResponse::Created().json(json!({ "id": row.get::<_, i64>(0), "created_at": rfc3339::format(&row.get(1)) })))
}

#[derive(Deserialize)]
pub struct ErrorsQuery {
    page: Option<i64>,
    per_page: Option<i64>,
    source: Option<String>,
}

pub async fn list(query: web::Query<ErrorsQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (page, per_page) = page_params(query.page, query.per_page)?;
    let client = state.db.get().await?;
    let source = query.source.clone().filter(|s| !s.is_empty());
    let total: i64 = client
        .query_one("SELECT count(*) FROM errors WHERE $1::text IS NULL OR source = $1", &[&source])
        .await?
        .get(0);
    let rows = client
        .query(
            "SELECT id, source, workflow, message, details, session_id, created_at FROM errors
             WHERE $1::text IS NULL OR source = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
            &[&source, &per_page, &((page - 1) * per_page)],
        )
        .await?;
    let errors: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.get::<_, i64>(0),
                "source": r.get::<_, String>(1),
                "workflow": r.get::<_, Option<String>>(2),
                "message": r.get::<_, String>(3),
                "details": r.get::<_, Option<Value>>(4),
                "session_id": r.get::<_, Option<Uuid>>(5),
                "created_at": rfc3339::format(&r.get(6)),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "errors": errors, "total": total, "page": page, "per_page": per_page })))
}
