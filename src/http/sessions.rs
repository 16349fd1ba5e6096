//! `/api/sessions…` (also answering as `/api/messenger-sessions…`): list,
//! detail, status/priority/assignee, QA, developer feedback, delete, bulk,
//! stats, escalations, claim, takeover and staff replies (the export is
//! `export.rs`). Changes
//! reach the live conversation actor (status frames, takeover) and the
//! dashboards (`session` frames) through the hub.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::ApiError;
use crate::auth::access::Principal;
use crate::auth::staff_sessions::StaffUser;
use crate::domain::listing::{Cursor, ListQuery, MAX_PER_PAGE, PageRequest, SessionFilter};
use crate::domain::role::DEVELOPERS;
use crate::attachments::Unsendable;
use crate::domain::{ClientMsgId, Priority, QaStatus, SeenUpTo, SessionId, SessionStatus};
use crate::state::AppState;
use crate::store::attachments::Sender;
use crate::store;
use crate::store::session_edits::{Reviewer, SessionChange};

/// Most ids one bulk request may name.
const MAX_BULK_IDS: usize = 500;
/// Longest QA notes or developer feedback.
const MAX_NOTES_CHARS: usize = 10_000;
/// Messages per page of a transcript.
const DEFAULT_TRANSCRIPT_PAGE: i64 = 500;
const MAX_TRANSCRIPT_PAGE: i64 = 1000;

pub async fn list(query: web::Query<ListQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let filter = SessionFilter::parse(&query, state.config.timezone)?;
    let page = PageRequest::parse(query.page, query.per_page)?;
    let cursor = query.cursor.as_deref().map(|c| Cursor::parse(c, filter.order)).transpose()?;
    let page = store::sessions::list(&state.db, &filter, page, cursor, state.config.timezone, state.config.inactive_after_hours, state.config.search_index_max_matches).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Deserialize)]
pub struct TranscriptQuery {
    after_seq: Option<i64>,
    limit: Option<i64>,
}

pub async fn detail(
    id: web::Path<Uuid>,
    query: web::Query<TranscriptQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let after = SeenUpTo::parse(query.after_seq.unwrap_or(0), "invalid_page", "after_seq")?.seq();
    let limit = query.limit.unwrap_or(DEFAULT_TRANSCRIPT_PAGE);
    if !(1..=MAX_TRANSCRIPT_PAGE).contains(&limit) {
        return Err(ApiError::invalid("invalid_page", format!("limit must be 1 to {MAX_TRANSCRIPT_PAGE}")));
    }
    let session = store::sessions::summary(&state.db, *id, state.config.inactive_after_hours).await?;
    let messages = store::sessions::messages(&state.db, *id, after, limit).await?;
    let next_after_seq = (messages.len() as i64 == limit).then(|| messages.last().map(|m| m.seq)).flatten();
    let qa_history = store::sessions::qa_history(&state.db, *id).await?;
    let notes = store::notes::list(&state.db, *id).await?;
    let emails = store::emails::for_session(&state.db, *id).await?;
    let channel_receipts: Vec<serde_json::Value> =
        store::reads::channel_statuses(&state.db, *id).await?.into_iter().map(|(seq, status)| json!({ "seq": seq, "status": status })).collect();
    let calls = store::calls::of_session(&state.db, *id).await?;
    let email_flag = match &session.customer.email {
        Some(address) => store::emails::address_flag(&state.db, address).await?,
        None => None,
    };
    Ok(HttpResponse::Ok().json(json!({
        "session": session,
        "messages": messages,
        "next_after_seq": next_after_seq,
        "qa_history": qa_history,
        "notes": notes,
        "emails": emails,
        "channel_receipts": channel_receipts,
        "calls": calls,
        "email_flag": email_flag.map(|(reason, at)| json!({ "reason": reason, "at": crate::protocol::rfc3339::format(&at) })),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    text: String,
}

/// `POST /api/sessions/{id}/notes`: a private note, for staff only.
pub async fn add_note(id: web::Path<Uuid>, body: web::Json<NoteBody>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > MAX_NOTES_CHARS {
        return Err(ApiError::invalid("invalid_text", format!("a note must be 1 to {MAX_NOTES_CHARS} characters")));
    }
    let note = store::notes::insert(&state.db, *id, user.user_id, text).await?;
    Ok(HttpResponse::Created().json(note))
}

/// `PUT /api/sessions/{id}`: any subset of the fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    status: Option<String>,
    priority: Option<String>,
    /// A user id, or `null` to unassign.
    #[serde(default, with = "super::nullable")]
    assignee_id: Option<Option<Uuid>>,
}

pub async fn update(id: web::Path<Uuid>, body: web::Json<Update>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let update = body.into_inner();
    let change = SessionChange {
        status: (update.status.as_deref())
            .map(|s| {
                SessionStatus::parse(s)
                    .ok_or_else(|| ApiError::invalid("invalid_status", "status must be active, resolved, escalated or archived"))
            })
            .transpose()?,
        priority: (update.priority.as_deref())
            .map(|p| Priority::parse(p).ok_or_else(|| ApiError::invalid("invalid_priority", "priority must be low, normal, high or urgent")))
            .transpose()?,
        assignee_id: update.assignee_id,
    };
    if change.status.is_none() && change.priority.is_none() && change.assignee_id.is_none() {
        return Err(ApiError::invalid("nothing_to_change", "give status, priority or assignee_id"));
    }
    if let Some(Some(assignee)) = change.assignee_id {
        // Only someone who may take the conversation over can be assigned it.
        if !store::users::is_assignable(&state.db, assignee).await? {
            return Err(ApiError::invalid("invalid_assignee", "assignee_id is not an active user who may take over (admin, developer or agent)"));
        }
    }
    store::session_edits::update(&state.db, *id, &change).await?;
    let session_id = SessionId(*id);
    if let Some(status) = change.status {
        state.hub.status_changed(session_id, status);
    }
    state.hub.session_changed(session_id);
    respond_with_summary(&state, *id).await
}

async fn respond_with_summary(state: &AppState, id: Uuid) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(store::sessions::summary(&state.db, id, state.config.inactive_after_hours).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaUpdate {
    /// Without it (or the current status), only the notes are saved.
    #[serde(default)]
    qa_status: Option<String>,
    #[serde(default)]
    qa_notes: Option<String>,
}

/// Sets the QA status (history, the `qa.issue` email: see the store).
pub async fn qa(id: web::Path<Uuid>, body: web::Json<QaUpdate>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let QaUpdate { qa_status, qa_notes } = body.into_inner();
    let to = qa_status
        .map(|s| QaStatus::parse(&s).ok_or_else(|| ApiError::invalid("invalid_qa_status", "qa_status must be unchecked, passed, issue or fixed")))
        .transpose()?;
    if to.is_none() && qa_notes.is_none() {
        return Err(ApiError::invalid("nothing_to_change", "give qa_status or qa_notes"));
    }
    // Given but empty: cleared.
    let notes: Option<Option<String>> = qa_notes.map(|n| Some(n.trim().to_owned()).filter(|n| !n.is_empty()));
    if notes.as_ref().and_then(|n| n.as_ref()).is_some_and(|n| n.chars().count() > MAX_NOTES_CHARS) {
        return Err(ApiError::invalid("notes_too_long", format!("qa_notes is longer than {MAX_NOTES_CHARS} characters")));
    }
    let reviewer = Reviewer { user_id: user.user_id, username: &user.username };
    let flagged = store::session_edits::set_qa(&state.db, *id, to, notes.as_ref().map(|n| n.as_deref()), reviewer).await?;
    state.hub.session_changed(SessionId(*id));
    if flagged {
        state.hub.notifier.wake();
    }
    respond_with_summary(&state, *id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevFeedback {
    dev_feedback: String,
}

pub async fn dev_feedback(
    id: web::Path<Uuid>,
    body: web::Json<DevFeedback>,
    user: StaffUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let text = body.into_inner().dev_feedback.trim().to_owned();
    if text.chars().count() > MAX_NOTES_CHARS {
        return Err(ApiError::invalid("notes_too_long", format!("dev_feedback is longer than {MAX_NOTES_CHARS} characters")));
    }
    store::session_edits::set_dev_feedback(&state.db, *id, &text, user.user_id).await?;
    state.hub.session_changed(SessionId(*id));
    respond_with_summary(&state, *id).await
}

pub async fn delete(id: web::Path<Uuid>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let files = store::session_edits::delete(&state.db, *id, state.config.timezone).await?;
    state.hub.session_deleted(SessionId(*id));
    state.attachments.delete(&files).await;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bulk {
    action: String,
    ids: Vec<Uuid>,
}

pub async fn bulk(body: web::Json<Bulk>, principal: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Bulk { action, ids } = body.into_inner();
    if ids.is_empty() || ids.len() > MAX_BULK_IDS {
        return Err(ApiError::invalid("invalid_ids", format!("ids must name 1 to {MAX_BULK_IDS} sessions")));
    }
    let affected: Vec<Uuid> = match action.as_str() {
        "archive" | "unarchive" => {
            let status = if action == "archive" { SessionStatus::Archived } else { SessionStatus::Active };
            let affected = store::session_edits::set_status_of(&state.db, &ids, status).await?;
            for &id in &affected {
                state.hub.status_changed(SessionId(id), status);
                state.hub.session_changed(SessionId(id));
            }
            affected
        }
        "delete" => {
            if !DEVELOPERS.contains(&principal.staff()?.role) {
                return Err(ApiError::Forbidden("your role may not delete sessions"));
            }
            let deleted = store::session_edits::delete_many(&state.db, &ids, state.config.timezone).await?;
            for &id in &deleted.sessions {
                state.hub.session_deleted(SessionId(id));
            }
            state.attachments.delete(&deleted.attachments).await;
            deleted.sessions
        }
        _ => return Err(ApiError::invalid("invalid_action", "action must be archive, unarchive or delete")),
    };
    Ok(HttpResponse::Ok().json(json!({ "action": action, "affected": affected.len(), "ids": affected })))
}

pub async fn stats(query: web::Query<ListQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let filter = SessionFilter::for_stats(query.into_inner(), state.config.timezone)?;
    let stats = store::session_stats::stats(&state.db, &filter, state.config.timezone, state.config.inactive_after_hours).await?;
    Ok(HttpResponse::Ok().json(stats))
}

#[derive(Deserialize)]
pub struct EscalationsQuery {
    page: Option<i64>,
    per_page: Option<i64>,
}

/// Open escalations, most urgent priority first, then longest waiting; paged
/// like every list, plus the documented `count` (the same as `total`).
pub async fn escalations(query: web::Query<EscalationsQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(query.page, query.per_page.or(Some(MAX_PER_PAGE)))?;
    let filter = SessionFilter::open_escalations();
    let page = store::sessions::list(&state.db, &filter, page, None, state.config.timezone, state.config.inactive_after_hours, state.config.search_index_max_matches).await?;
    Ok(HttpResponse::Ok().json(json!({
        "count": page.total,
        "sessions": page.sessions,
        "total": page.total,
        "page": page.page,
        "per_page": page.per_page,
    })))
}

pub async fn claim(id: web::Path<Uuid>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    store::session_edits::assign(&state.db, *id, user.user_id).await?;
    state.hub.session_changed(SessionId(*id));
    respond_with_summary(&state, *id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeoverBody {
    on: bool,
}

pub async fn takeover(id: web::Path<Uuid>, body: web::Json<TakeoverBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let session = state.hub.session(SessionId(*id)).await?.ok_or(ApiError::NotFound("session"))?;
    let handler = session.takeover(body.on).await.map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok(HttpResponse::Ok().json(json!({ "session_id": *id, "handler": handler })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    client_msg_id: String,
    #[serde(default)]
    text: String,
    /// Ids from `POST /api/attachments`; `text` may then be empty.
    #[serde(default)]
    attachments: Vec<Uuid>,
}

/// A staff reply over HTTP; answers once it is stored, with its seq.
pub async fn reply(id: web::Path<Uuid>, body: web::Json<Reply>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Reply { client_msg_id, text, attachments } = body.into_inner();
    let client_msg_id = ClientMsgId::parse(&client_msg_id).map_err(|e| ApiError::invalid(e.code, e.message))?;
    let session = state.hub.session(SessionId(*id)).await?.ok_or(ApiError::NotFound("session"))?;
    let max_chars = state.config.limits.max_message_chars;
    let to = (*id, Sender::Staff);
    let message = crate::attachments::message_body(&state.db, &text, &attachments, to, client_msg_id.as_str(), max_chars).await.map_err(|e| match e {
        Unsendable::Invalid(e) => ApiError::invalid(e.code, e.message),
        Unsendable::Store(e) => e.into(),
    })?;
    match session.staff_say_stored(user.author(), client_msg_id, message).await {
        Ok(seq) => Ok(HttpResponse::Created().json(json!({ "session_id": *id, "seq": seq }))),
        Err(_) => Err(ApiError::Unavailable(anyhow::anyhow!("the reply could not be stored; resend it"))),
    }
}
