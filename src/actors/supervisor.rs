//! The supervisor actor: the conversations report every event here (new
//! message, status change, typing) for the staff dashboards. Until the
//! dashboard socket arrives it only counts what it is told; the conversation
//! side of the contract is complete.

use std::sync::Arc;

use actix::prelude::*;

use crate::domain::SessionId;
use crate::ws::protocol::MessageView;

/// Something happened in a conversation.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum SessionEvent {
    MessageStored { session_id: SessionId, message: Arc<MessageView> },
    SessionChanged { session_id: SessionId },
    Typing { session_id: SessionId, role: crate::domain::MessageRole, on: bool },
}

#[derive(Default)]
pub struct Supervisor;

impl Actor for Supervisor {
    type Context = Context<Self>;
}

impl Handler<SessionEvent> for Supervisor {
    type Result = ();

    fn handle(&mut self, event: SessionEvent, _: &mut Context<Self>) {
        let kind = match event {
            SessionEvent::MessageStored { .. } => "message_stored",
            SessionEvent::SessionChanged { .. } => "session_changed",
            SessionEvent::Typing { .. } => "typing",
        };
        metrics::counter!("chathub_session_events_total", "kind" => kind).increment(1);
    }
}
