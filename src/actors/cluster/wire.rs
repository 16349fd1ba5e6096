//! What nodes say to each other over the bus, as JSON: commands to the node
//! that runs a conversation and their answers, and the events every node
//! applies. Frames for sockets travel as raw bytes with headers instead
//! (see `serve::socket_frames`), so a chat frame is never re-encoded.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::super::persistence::PersistError;
use super::super::supervisor::SessionEvent;
use crate::domain::{Attachment, Handler as SessionHandler, MessageRole, Seq, SessionId, SessionStatus};
use crate::outbound::ConnId;
use crate::protocol::{EmailView, MessageView};

/// A command for a conversation, sent to the node that runs it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// A visitor socket on `node` (its `conn`) joins, having seen `last_seq`.
    Attach { session: SessionId, node: String, conn: ConnId, last_seq: Seq },
    /// That socket closed (no answer expected).
    Detach { session: SessionId, node: String, conn: ConnId },
    VisitorMessage {
        session: SessionId,
        node: String,
        conn: ConnId,
        client_msg_id: String,
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
    },
    VisitorTyping { session: SessionId, on: bool },
    /// A staff reply; answered once stored.
    StaffSay {
        session: SessionId,
        author: crate::domain::Author,
        client_msg_id: String,
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
    },
    Takeover { session: SessionId, on: bool },
    StaffTyping { session: SessionId, on: bool },
    TranscriptAfter { session: SessionId, after: Seq },
    /// A channel's message (webhook, relay); answered once stored.
    StoreExternal {
        session: SessionId,
        external_id: String,
        role: MessageRole,
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
    },
}

impl Command {
    pub fn session(&self) -> SessionId {
        match self {
            Command::Attach { session, .. }
            | Command::Detach { session, .. }
            | Command::VisitorMessage { session, .. }
            | Command::VisitorTyping { session, .. }
            | Command::StaffSay { session, .. }
            | Command::Takeover { session, .. }
            | Command::StaffTyping { session, .. }
            | Command::TranscriptAfter { session, .. }
            | Command::StoreExternal { session, .. } => *session,
        }
    }
}

/// The answer to a command.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    Attached { messages: Vec<MessageView>, gap: Option<(Seq, Seq)>, status: String, agent_typing: bool, staff_read_seq: Seq },
    InvalidLastSeq { newest: Seq },
    /// Taken into the conversation's queue (its ack follows as a frame).
    Taken,
    Stored { seq: Seq },
    Failed { error: PersistError },
    Handler { handler: SessionHandler },
    Transcript { messages: Option<Vec<MessageView>> },
    /// The conversation's mailbox is full: try again.
    Busy,
    /// This node does not run the conversation (any more), or does not know
    /// the socket: the sender resolves the owner again.
    NotHere,
    /// No such conversation.
    Unknown,
}

/// Something every node applies.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    MessageStored { session: SessionId, message: MessageView },
    EmailChanged { session: SessionId, email: EmailView },
    VisitorRead { session: SessionId, seq: Seq },
    ChannelStatus { session: SessionId, seq: Seq, status: String },
    /// Staff read (stored): the node running it tells its visitors.
    StaffRead { session: SessionId, seq: Seq },
    SessionChanged { session: SessionId },
    SessionDeleted { session: SessionId },
    Typing { session: SessionId, role: MessageRole, on: bool },
    /// Staff changed a status (stored): the node running it tells its visitors.
    StatusChanged { session: SessionId, status: SessionStatus },
    /// Completion rules changed (stored): every node reloads them.
    RulesChanged,
    /// A site changed or was deleted (stored): every node forgets its copy.
    SiteChanged { key: String },
}

impl Event {
    pub fn of(event: &SessionEvent) -> Self {
        match event {
            SessionEvent::MessageStored { session_id, message } => {
                Event::MessageStored { session: *session_id, message: MessageView::clone(message) }
            }
            SessionEvent::EmailChanged { session_id, email } => Event::EmailChanged { session: *session_id, email: EmailView::clone(email) },
            SessionEvent::VisitorRead { session_id, seq } => Event::VisitorRead { session: *session_id, seq: *seq },
            SessionEvent::ChannelStatus { session_id, seq, status } => Event::ChannelStatus { session: *session_id, seq: *seq, status: status.clone() },
            SessionEvent::SessionChanged { session_id } => Event::SessionChanged { session: *session_id },
            SessionEvent::SessionDeleted { session_id } => Event::SessionDeleted { session: *session_id },
            SessionEvent::Typing { session_id, role, on } => Event::Typing { session: *session_id, role: *role, on: *on },
        }
    }

    /// The supervisor's form of a conversation event.
    pub fn for_supervisor(&self) -> Option<SessionEvent> {
        Some(match self {
            Event::MessageStored { session, message } => {
                SessionEvent::MessageStored { session_id: *session, message: Arc::new(message.clone()) }
            }
            Event::EmailChanged { session, email } => SessionEvent::EmailChanged { session_id: *session, email: Arc::new(email.clone()) },
            Event::VisitorRead { session, seq } => SessionEvent::VisitorRead { session_id: *session, seq: *seq },
            Event::ChannelStatus { session, seq, status } => SessionEvent::ChannelStatus { session_id: *session, seq: *seq, status: status.clone() },
            Event::SessionChanged { session } => SessionEvent::SessionChanged { session_id: *session },
            Event::SessionDeleted { session } => SessionEvent::SessionDeleted { session_id: *session },
            Event::Typing { session, role, on } => SessionEvent::Typing { session_id: *session, role: *role, on: *on },
            Event::StatusChanged { .. } | Event::StaffRead { .. } | Event::RulesChanged | Event::SiteChanged { .. } => return None,
        })
    }
}

/// A settings change another node made (already stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsChange {
    Rules,
    Site(String),
}
