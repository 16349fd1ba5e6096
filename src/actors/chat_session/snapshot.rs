//! What a conversation actor starts from: a new conversation, or one
//! loaded from PostgreSQL (`store::conversations::load`).

use super::*;
use crate::store::conversations::StoredConversation;

/// The state a conversation actor starts from: new, or loaded from PostgreSQL.
pub struct SessionSnapshot {
    pub id: SessionId,
    pub channel: Channel,
    pub site_id: Option<Uuid>,
    pub customer: Customer,
    pub status: SessionStatus,
    pub handler: SessionHandler,
    pub completed_at: Option<DateTime<Utc>>,
    pub completion_rule: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub last_seq: Seq,
    pub transcript: Vec<MessageView>,
    pub client_ids: HashMap<String, Seq>,
    /// Channel message ids (mid, wamid, relay ids) already stored → seq.
    pub external_ids: HashMap<String, Seq>,
    /// The channel's conversation key (PSID, WhatsApp number, relay id).
    pub external_id: Option<String>,
    /// Relayed from another bot: that bot answers, so ours never does.
    pub relay: bool,
    /// The session row of a conversation nobody wrote in yet: it is stored
    /// with the first message, in the same transaction.
    pub unsaved: Option<NewSessionRow>,
}

impl SessionSnapshot {
    /// A conversation as stored in PostgreSQL.
    pub fn stored(id: SessionId, stored: StoredConversation) -> Self {
        Self {
            id,
            channel: stored.channel,
            site_id: stored.site_id,
            customer: stored.customer,
            status: stored.status,
            handler: stored.handler,
            completed_at: stored.completed_at,
            completion_rule: stored.completion_rule,
            created_at: stored.created_at,
            last_activity: stored.last_activity,
            last_seq: stored.last_seq,
            transcript: stored.transcript,
            client_ids: stored.client_ids,
            external_ids: stored.external_ids,
            external_id: stored.external_id,
            relay: stored.relay,
            unsaved: None,
        }
    }


    /// A conversation nobody has written in yet, whose row is not stored.
    pub fn unsaved(id: SessionId, row: NewSessionRow) -> Self {
        Self {
            id,
            channel: row.channel,
            site_id: row.site_id,
            customer: row.customer.clone(),
            status: SessionStatus::Active,
            handler: SessionHandler::Ai,
            completed_at: None,
            completion_rule: None,
            created_at: row.created_at,
            last_activity: row.created_at,
            last_seq: 0,
            transcript: Vec::new(),
            client_ids: HashMap::new(),
            external_ids: HashMap::new(),
            external_id: row.external_id.clone(),
            relay: false,
            unsaved: Some(row),
        }
    }
}
