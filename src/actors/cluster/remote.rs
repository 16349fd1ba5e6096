//! A conversation another node runs, reached over the bus: what
//! `SessionHandle` does when the conversation is not here. Each call is a
//! request to the owner's command subject; a visitor socket attached this
//! way is registered here, and the owner sends its frames to this node.
//!
//! When the owner cannot be reached (gone, or it no longer runs the
//! conversation), a visitor socket is closed with `MOVED` (1012): the client
//! reconnects and resumes from PostgreSQL on whichever node now runs it.
//! Senders are told to retry, never that something was stored when it was not.

use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;

use super::super::chat_session::{AttachError, Attached};
use super::super::handles::Busy;
use super::super::persistence::PersistError;
use super::wire::{Command, Reply};
use super::{Cluster, RemoteSocket};
use crate::bus::{BusError, subject};
use crate::domain::{Author, ClientMsgId, MessageBody, Handler as SessionHandler, MessageRole, SeenUpTo, Seq, SessionId};
use crate::outbound::{ConnId, Outbound};
use crate::protocol::{MessageView, StaffFrame, close, error_code};

/// How long a command waits for the owner (a stored message waits for its commit).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a write waits for the owner's commit.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);
const MOVED_TEXT: &str = "the conversation moved to another server; reconnect";

/// A conversation running on `owner`.
#[derive(Clone)]
pub struct RemoteSession {
    id: SessionId,
    owner: String,
    cluster: Arc<Cluster>,
}

impl RemoteSession {
    pub fn new(id: SessionId, owner: String, cluster: Arc<Cluster>) -> Self {
        Self { id, owner, cluster }
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    async fn ask(&self, command: &Command, timeout: Duration) -> Result<Reply, BusError> {
        let payload = serde_json::to_vec(command).expect("commands encode");
        let answer = self.cluster.bus.request(subject::commands(&self.owner), payload.into(), timeout).await;
        if answer == Err(BusError::NoResponders) {
            // Gone: the next lookup asks again instead of trusting the cache.
            self.cluster.alive.remove(&self.owner);
        }
        Ok(serde_json::from_slice(&answer?).unwrap_or(Reply::NotHere))
    }

    fn tell(&self, command: &Command) {
        let payload = serde_json::to_vec(command).expect("commands encode");
        self.cluster.bus.publish(subject::commands(&self.owner), None, payload.into());
    }

    fn node(&self) -> String {
        self.cluster.node_id().to_owned()
    }

    pub async fn attach_visitor(&self, outbound: Outbound, last_seq: SeenUpTo) -> Result<Attached, AttachError> {
        let conn = outbound.id;
        // Registered first: frames the owner sends right after the attach
        // wait in the socket's queue until the backlog is written.
        self.cluster.remote_sockets.insert(conn, RemoteSocket { owner: self.owner.clone(), outbound });
        let command = Command::Attach { session: self.id, node: self.node(), conn, last_seq: last_seq.seq() };
        let outcome = match self.ask(&command, COMMAND_TIMEOUT).await {
            Ok(Reply::Attached { messages, gap, status, agent_typing, staff_read_seq }) => {
                return Ok(Attached { messages, gap, status: ByteString::from(status), agent_typing, staff_read_seq });
            }
            Ok(Reply::InvalidLastSeq { newest }) => Err(AttachError::InvalidLastSeq { newest }),
            _ => Err(AttachError::Stopped),
        };
        self.cluster.remote_sockets.remove(&conn);
        outcome
    }

    pub fn detach_visitor(&self, conn: ConnId) {
        self.cluster.remote_sockets.remove(&conn);
        self.tell(&Command::Detach { session: self.id, node: self.node(), conn });
    }

    /// Waits for the owner to take the message (its ack follows as a frame),
    /// so a visitor's messages keep their order.
    pub async fn visitor_message(&self, outbound: &Outbound, client_msg_id: ClientMsgId, body: MessageBody) -> Result<(), Busy> {
        let (text, attachments) = body.into_parts();
        let command = Command::VisitorMessage {
            session: self.id,
            node: self.node(),
            conn: outbound.id,
            client_msg_id: client_msg_id.into_string(),
            text,
            attachments,
        };
        match self.ask(&command, COMMAND_TIMEOUT).await {
            Ok(Reply::Taken) => Ok(()),
            Ok(Reply::Busy) | Err(BusError::TimedOut) => Err(Busy),
            _ => {
                outbound.close(close::MOVED, MOVED_TEXT);
                Err(Busy)
            }
        }
    }

    pub fn visitor_typing(&self, on: bool) {
        self.tell(&Command::VisitorTyping { session: self.id, on });
    }

    /// A dashboard's reply: answered on `outbound` once the owner stored it.
    pub fn staff_say(&self, author: Author, client_msg_id: ClientMsgId, body: MessageBody, outbound: Outbound) {
        let this = self.clone();
        tokio::spawn(async move {
            let id = client_msg_id.as_str().to_owned();
            let frame = match this.staff_say_stored(author, client_msg_id, body).await {
                Ok(seq) => StaffFrame::Ack { session_id: this.id, client_msg_id: &id, seq }.encode(),
                Err(_) => StaffFrame::error(this.id, error_code::RETRY, "not stored; resend this message", Some(&id)),
            };
            outbound.send(frame);
        });
    }

    pub async fn staff_say_stored(&self, author: Author, client_msg_id: ClientMsgId, body: MessageBody) -> Result<Seq, PersistError> {
        let (text, attachments) = body.into_parts();
        let command = Command::StaffSay { session: self.id, author, client_msg_id: client_msg_id.into_string(), text, attachments };
        self.stored(self.ask(&command, STORE_TIMEOUT).await)
    }

    pub async fn takeover(&self, on: bool) -> Result<SessionHandler, Busy> {
        match self.ask(&Command::Takeover { session: self.id, on }, COMMAND_TIMEOUT).await {
            Ok(Reply::Handler { handler }) => Ok(handler),
            _ => Err(Busy),
        }
    }

    pub fn staff_typing(&self, on: bool) {
        self.tell(&Command::StaffTyping { session: self.id, on });
    }

    pub async fn transcript_after(&self, after: SeenUpTo) -> Option<Vec<MessageView>> {
        match self.ask(&Command::TranscriptAfter { session: self.id, after: after.seq() }, COMMAND_TIMEOUT).await {
            Ok(Reply::Transcript { messages }) => messages,
            _ => None,
        }
    }

    pub async fn store_external(&self, external_id: String, role: MessageRole, body: MessageBody) -> Result<Seq, PersistError> {
        let (text, attachments) = body.into_parts();
        let command = Command::StoreExternal { session: self.id, external_id, role, text, attachments };
        self.stored(self.ask(&command, STORE_TIMEOUT).await)
    }

    /// A write's answer; anything but a definite outcome is `Stopped`
    /// (post it again: the resend is deduplicated).
    fn stored(&self, answer: Result<Reply, BusError>) -> Result<Seq, PersistError> {
        match answer {
            Ok(Reply::Stored { seq }) => Ok(seq),
            Ok(Reply::Failed { error }) => Err(error),
            Ok(Reply::Busy) => Err(PersistError::Overloaded),
            _ => Err(PersistError::Stopped),
        }
    }
}
