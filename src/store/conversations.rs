//! Conversations as their actors read them: everything a conversation
//! starts from (`load`), what is stored after a seq (`written_since`, the
//! truth re-read after a write whose outcome is unknown), and the lookups
//! that find a conversation by visitor token or by channel key.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use super::sessions::{MESSAGE_FIELD_COUNT, message_fields, message_from_row};
use crate::domain::{Channel, Customer, Handler as SessionHandler, Seq, SessionId, SessionStatus};
use crate::postgres::Db;
use crate::protocol::MessageView;

/// A stored conversation: its session row, its latest messages and the
/// dedupe keys of every message.
pub struct StoredConversation {
    pub channel: Channel,
    pub site_id: Option<Uuid>,
    pub customer: Customer,
    pub status: SessionStatus,
    pub handler: SessionHandler,
    pub completed_at: Option<DateTime<Utc>>,
    pub completion_rule: Option<String>,
    pub last_seq: Seq,
    pub created_at: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    /// The latest messages, oldest first.
    pub transcript: Vec<MessageView>,
    /// `client_msg_id` → seq.
    pub client_ids: HashMap<String, Seq>,
    /// Channel message ids (mid, wamid, relay ids) → seq.
    pub external_ids: HashMap<String, Seq>,
    pub external_id: Option<String>,
    /// Relayed from another bot (`metadata.source = relay`).
    pub relay: bool,
    /// How far staff have read the visitor's messages.
    pub staff_read_seq: Seq,
    /// Messenger/WhatsApp: the customer was asked for a rating, and has given one.
    pub csat_asked: bool,
    pub csat_given: bool,
}

/// The conversation `id` with its latest `recent` messages, if it exists.
pub async fn load(db: &Db, id: SessionId, recent: i64) -> Result<Option<StoredConversation>, StoreError> {
    let client = db.get().await?;
    let Some(row) = client
        .query_opt(
            "SELECT channel, site_id, customer_name, customer_email, customer_phone, status, handler,
                    completed_at, completion_rule, last_seq, created_at, COALESCE(last_message_at, created_at),
                    external_id, COALESCE(metadata->>'source' = 'relay', false), staff_read_seq,
                    csat_asked_at IS NOT NULL, csat_score IS NOT NULL
             FROM sessions WHERE id = $1",
            &[&id.0],
        )
        .await?
    else {
        return Ok(None);
    };
    let latest = client
        .query(&format!("SELECT {} FROM messages WHERE session_id = $1 ORDER BY seq DESC LIMIT $2", message_fields()), &[&id.0, &recent])
        .await?;
    let mut client_ids = HashMap::new();
    let mut external_ids = HashMap::new();
    for key in client
        .query(
            "SELECT client_msg_id, external_id, seq FROM messages
             WHERE session_id = $1 AND (client_msg_id IS NOT NULL OR external_id IS NOT NULL)",
            &[&id.0],
        )
        .await?
    {
        if let Some(c) = key.get::<_, Option<String>>(0) {
            client_ids.insert(c, key.get(2));
        }
        if let Some(e) = key.get::<_, Option<String>>(1) {
            external_ids.insert(e, key.get(2));
        }
    }
    Ok(Some(StoredConversation {
        channel: Channel::parse(row.get(0)).unwrap_or(Channel::Web),
        site_id: row.get(1),
        customer: Customer { name: row.get(2), email: row.get(3), phone: row.get(4) },
        status: SessionStatus::parse(row.get(5)).unwrap_or(SessionStatus::Active),
        handler: SessionHandler::parse(row.get(6)).unwrap_or(SessionHandler::Ai),
        completed_at: row.get(7),
        completion_rule: row.get(8),
        last_seq: row.get(9),
        created_at: row.get(10),
        last_activity: row.get(11),
        transcript: latest.iter().rev().map(|r| message_from_row(r, 0)).collect(),
        client_ids,
        external_ids,
        external_id: row.get(12),
        relay: row.get(13),
        staff_read_seq: row.get(14),
        csat_asked: row.get(15),
        csat_given: row.get(16),
    }))
}

/// What the reconciliation of a failed write found stored.
#[derive(Debug)]
pub struct WrittenSince {
    /// Whether the session row exists (a first write may have stored it).
    pub session_exists: bool,
    /// The session's `last_seq` as stored.
    pub last_seq: Seq,
    /// The messages stored after the seq the actor knew, in order.
    pub rows: Vec<WrittenRow>,
    /// Channel message ids of the write that are stored in another conversation.
    pub taken_elsewhere: HashSet<String>,
}

#[derive(Debug)]
pub struct WrittenRow {
    pub view: MessageView,
    pub client_msg_id: Option<String>,
    pub external_id: Option<String>,
}

/// What is stored for a conversation after `after` (its actor's last known
/// seq), and which of `external_ids` are stored in other conversations.
pub async fn written_since(db: &Db, id: SessionId, channel: Channel, after: Seq, external_ids: &[String]) -> Result<WrittenSince, StoreError> {
    let client = db.get().await?;
    let last_seq: Option<Seq> = client.query_opt("SELECT last_seq FROM sessions WHERE id = $1", &[&id.0]).await?.map(|r| r.get(0));
    let rows = client
        .query(
            &format!(
                "SELECT {}, client_msg_id, external_id FROM messages
                 WHERE session_id = $1 AND seq > $2 ORDER BY seq",
                message_fields()
            ),
            &[&id.0, &after],
        )
        .await?
        .iter()
        .map(|r| WrittenRow { view: message_from_row(r, 0), client_msg_id: r.get(MESSAGE_FIELD_COUNT), external_id: r.get(MESSAGE_FIELD_COUNT + 1) })
        .collect();
    let taken_elsewhere = if external_ids.is_empty() {
        HashSet::new()
    } else {
        client
            .query(
                "SELECT external_id FROM messages WHERE channel = $1 AND external_id = ANY($2) AND session_id <> $3",
                &[&channel.as_str(), &external_ids, &id.0],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    Ok(WrittenSince { session_exists: last_seq.is_some(), last_seq: last_seq.unwrap_or(0), rows, taken_elsewhere })
}

/// The stored conversation a visitor token (its SHA-256) belongs to, with its site.
/// The channel of session `id` (`web` if it is gone).
pub async fn channel_of(db: &Db, id: Uuid) -> Result<Channel, StoreError> {
    let row = db.get().await?.query_opt("SELECT channel FROM sessions WHERE id = $1", &[&id]).await?;
    Ok(row.and_then(|r| Channel::parse(r.get(0))).unwrap_or(Channel::Web))
}

pub async fn find_by_visitor_token(db: &Db, token_hash: &[u8]) -> Result<Option<(SessionId, Option<Uuid>)>, StoreError> {
    let row = db.get().await?.query_opt("SELECT id, site_id FROM sessions WHERE visitor_token_hash = $1", &[&token_hash]).await?;
    Ok(row.map(|r| (SessionId(r.get(0)), r.get(1))))
}

/// The stored conversation of a channel's conversation key (PSID, number, relay id).
pub async fn find_external(db: &Db, channel: Channel, external_id: &str) -> Result<Option<SessionId>, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt("SELECT id FROM sessions WHERE channel = $1 AND external_id = $2", &[&channel.as_str(), &external_id])
        .await?;
    Ok(row.map(|r| SessionId(r.get(0))))
}
