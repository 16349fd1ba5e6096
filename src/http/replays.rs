//! `/api/replays` (SPEC §16): replay sessions against the agent configured
//! now (admins and developers start them; any staff reads them). The work
//! runs in the background (`actors::replay`); the answer is the replay as
//! it starts.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::ApiError;
use crate::auth::staff_sessions::StaffUser;
use crate::state::AppState;
use crate::store;

/// Most sessions one replay covers.
pub const MAX_REPLAY_SESSIONS: usize = 100;
const MAX_NOTE_CHARS: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReplay {
    session_ids: Vec<Uuid>,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/replays {"session_ids":[…], "note"?}` → `202 {"replay"}`.
pub async fn create(body: web::Json<NewReplay>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let NewReplay { mut session_ids, note } = body.into_inner();
    let mut seen = std::collections::HashSet::new();
    session_ids.retain(|id| seen.insert(*id));
    if session_ids.is_empty() || session_ids.len() > MAX_REPLAY_SESSIONS {
        return Err(ApiError::invalid("invalid_session_ids", format!("session_ids must name 1 to {MAX_REPLAY_SESSIONS} sessions")));
    }
    let note = note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS || n.contains('\0')) {
        return Err(ApiError::invalid("invalid_note", format!("note must be at most {MAX_NOTE_CHARS} characters")));
    }
    let known = store::sessions::existing(&state.db, &session_ids).await?;
    if known.len() != session_ids.len() {
        return Err(ApiError::NotFound("session"));
    }
    let id = Uuid::new_v4();
    let replay = store::replays::create(&state.db, id, &user.display_name, note, &session_ids).await?;
    state.hub.replay(id, session_ids);
    Ok(HttpResponse::Accepted().json(json!({ "replay": replay })))
}

/// `GET /api/replays/{id}`.
pub async fn get(id: web::Path<Uuid>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let replay = store::replays::get(&state.db, *id).await?.ok_or(ApiError::NotFound("replay"))?;
    Ok(HttpResponse::Ok().json(json!({ "replay": replay })))
}

/// `GET /api/replays`: the newest 50, with their summaries.
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let replays = store::replays::list(&state.db, 50).await?;
    Ok(HttpResponse::Ok().json(json!({ "replays": replays })))
}
