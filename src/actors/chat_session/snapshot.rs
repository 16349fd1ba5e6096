//! What a conversation actor starts from: a new conversation, or one
//! loaded from PostgreSQL (`store::conversations::load`).

use super::*;
use crate::store::conversations::StoredConversation;

/// The state a conversation actor starts from.
pub struct SessionSnapshot {
    pub id: SessionId,
    /// The conversation as stored (for a new one: as it will be stored).
    pub stored: StoredConversation,
    /// The session row of a conversation nobody wrote in yet: it is stored
    /// with the first message, in the same transaction.
    pub unsaved: Option<NewSessionRow>,
    /// Several nodes: the fencing number of the lease this node claimed
    /// before loading the conversation.
    pub fence: Option<i64>,
}

impl SessionSnapshot {
    /// The same snapshot, run under a lease with `fence` (several nodes).
    pub fn fenced(mut self, fence: Option<i64>) -> Self {
        self.fence = fence;
        self
    }

    /// A conversation as stored in PostgreSQL.
    pub fn stored(id: SessionId, stored: StoredConversation) -> Self {
        Self { id, stored, unsaved: None, fence: None }
    }

    /// A conversation nobody has written in yet, whose row is not stored.
    pub fn unsaved(id: SessionId, row: NewSessionRow) -> Self {
        let stored = StoredConversation {
            channel: row.channel,
            site_id: row.site_id,
            customer: row.customer.clone(),
            status: SessionStatus::Active,
            handler: SessionHandler::Ai,
            completed_at: None,
            completion_rule: None,
            last_seq: 0,
            created_at: row.created_at,
            last_activity: row.created_at,
            transcript: Vec::new(),
            client_ids: HashMap::new(),
            external_ids: HashMap::new(),
            external_id: row.external_id.clone(),
            relay: false,
            staff_read_seq: 0,
            csat_asked: false,
            csat_given: false,
        };
        Self { id, stored, unsaved: Some(row), fence: None }
    }
}
