//! The relay API, for bots that already talk to Messenger (the seeds' n8n
//! flows): `POST /api/sessions` (also `/api/messenger-sessions`) creates a
//! session with its metadata and messages, or appends to the one with the
//! same external id; `POST /api/sessions/{id}/messages` appends one message.
//! Messages carry their own ids, so a repeated post stores nothing twice.
//! Those ids are the relay's own, so they are kept per conversation
//! (`relay_message_key`): the same id in two conversations is two messages,
//! and no relay id can take the place of a Messenger `mid` or WhatsApp
//! `wamid` that a real webhook will bring later.
//! Relayed messages go through the same conversation actors as live ones:
//! dashboards see them live and completion rules run on them. The relaying
//! bot answers its own visitors, so chathub's agent never does.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiError;
use crate::actors::SessionHandle;
use crate::actors::persistence::PersistError;
use crate::domain::{Channel, ChatText, Customer, MessageBody, MessageRole, SessionId};
use crate::state::AppState;

/// Messages accepted in one post.
const MAX_MESSAGES: usize = 500;
const MAX_ID_CHARS: usize = 200;

#[derive(Deserialize, Default)]
pub struct RelayCustomer {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayMessage {
    /// The message's own id (dedupe key).
    id: String,
    role: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySession {
    /// The relay's id for the conversation (for Messenger bots, the PSID).
    session_id: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    customer: Option<RelayCustomer>,
    // The seeds' flat field names are accepted too.
    #[serde(default)]
    customer_name: Option<String>,
    #[serde(default)]
    customer_email: Option<String>,
    #[serde(default)]
    customer_phone: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    messages: Vec<RelayMessage>,
}

/// Where a relay message id is stored: scoped to its conversation, and
/// under a prefix no channel's own message ids use.
fn relay_message_key(session_id: SessionId, id: &str) -> String {
    format!("relay:{session_id}:{id}")
}

/// An id the relay chose: 1 to `MAX_ID_CHARS` characters, no NUL bytes
/// (PostgreSQL text cannot hold them).
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= MAX_ID_CHARS && !id.contains('\0')
}

/// Whether any string (or key) inside a JSON value holds a NUL byte, which
/// PostgreSQL's jsonb refuses.
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn parse_message(m: RelayMessage, max_chars: usize) -> Result<(String, MessageRole, ChatText), ApiError> {
    if !valid_id(&m.id) {
        return Err(ApiError::invalid("invalid_message_id", format!("a message id must be 1 to {MAX_ID_CHARS} characters, without NUL")));
    }
    let role = MessageRole::parse(&m.role)
        .ok_or_else(|| ApiError::invalid("invalid_role", "role must be visitor, ai, agent or system"))?;
    let text = ChatText::parse(&m.text, max_chars).map_err(|e| ApiError::invalid(e.code, e.message))?;
    Ok((m.id, role, text))
}

async fn store(session: &SessionHandle, id: &str, role: MessageRole, text: ChatText) -> Result<i64, ApiError> {
    match session.store_external(relay_message_key(session.id(), id), role, MessageBody::plain(text)).await {
        Ok(seq) => Ok(seq),
        Err(PersistError::Conflict(_)) => {
            Err(ApiError::Conflict(format!("message id {id:?} is already stored in another conversation")))
        }
        Err(e) => Err(ApiError::Unavailable(anyhow::anyhow!("a relayed message could not be stored ({e}); post it again"))),
    }
}

pub async fn create(body: web::Json<RelaySession>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let relay = body.into_inner();
    if !valid_id(&relay.session_id) {
        return Err(ApiError::invalid("invalid_session_id", format!("session_id must be 1 to {MAX_ID_CHARS} characters, without NUL")));
    }
    if relay.messages.len() > MAX_MESSAGES {
        return Err(ApiError::invalid("too_many_messages", format!("at most {MAX_MESSAGES} messages per post")));
    }
    let channel = match relay.channel.as_deref() {
        None | Some("messenger") => Channel::Messenger,
        Some("whatsapp") => Channel::Whatsapp,
        Some("web") => Channel::Web,
        Some(_) => return Err(ApiError::invalid("invalid_channel", "channel must be messenger, whatsapp or web")),
    };
    let nested = relay.customer.unwrap_or_default();
    let customer = Customer::parse(
        nested.name.as_deref().or(relay.customer_name.as_deref()),
        nested.email.as_deref().or(relay.customer_email.as_deref()),
        nested.phone.as_deref().or(relay.customer_phone.as_deref()),
    )
    .map_err(|e| ApiError::invalid(e.code, e.message))?;
    let max_chars = state.config.limits.max_message_chars;
    // Check every message before storing any.
    let messages = relay.messages.into_iter().map(|m| parse_message(m, max_chars)).collect::<Result<Vec<_>, _>>()?;
    let mut metadata = relay.metadata.unwrap_or_else(|| json!({}));
    if !metadata.is_object() || has_nul(&metadata) {
        return Err(ApiError::invalid("invalid_metadata", "metadata must be an object without NUL characters"));
    }
    metadata["source"] = json!("relay");
    let session = state
        .hub
        .external_session(channel, &relay.session_id, &customer, metadata)
        .await
        .map_err(ApiError::Unavailable)?;
    let mut stored = Vec::with_capacity(messages.len());
    for (id, role, text) in messages {
        stored.push(store(&session, &id, role, text).await?);
    }
    let summary = crate::store::sessions::summary(&state.db, session.id().0, state.config.inactive_after_hours).await?;
    Ok(HttpResponse::Ok().json(json!({ "session": summary, "seqs": stored })))
}

pub async fn append(id: web::Path<Uuid>, body: web::Json<RelayMessage>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (message_id, role, text) = parse_message(body.into_inner(), state.config.limits.max_message_chars)?;
    let session = state.hub.session(SessionId(*id)).await?.ok_or(ApiError::NotFound("session"))?;
    let seq = store(&session, &message_id, role, text).await?;
    Ok(HttpResponse::Created().json(json!({ "session_id": *id, "seq": seq })))
}
