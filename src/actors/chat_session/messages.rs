//! What a conversation is sent: one message type and its handler each.
//! Commands are imperative (`AttachVisitor`, `StaffSay`), events past tense
//! (`StatusChanged`, `Deleted`).

use super::*;
use crate::domain::SeenUpTo;

/// Why a socket could not attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachError {
    /// `last_seq` is past the newest stored message.
    InvalidLastSeq { newest: Seq },
    /// The conversation's actor stopped (evicted or deleted) meanwhile.
    Stopped,
}

/// What a newly attached socket needs to catch up.
pub struct Attached {
    /// Stored messages after the client's `last_seq` that are in memory.
    pub messages: Vec<MessageView>,
    /// Older missed messages to read from PostgreSQL first: `(after, up_to]`.
    pub gap: Option<(Seq, Seq)>,
    pub status: ByteString,
    pub agent_typing: bool,
    /// How far staff have read (the widget shows "Seen").
    pub staff_read_seq: Seq,
}

/// A visitor socket joins the conversation, having seen up to `last_seq`.
/// Attaching and taking the backlog happen in one step, so nothing committed
/// in between is missed or sent twice.
#[derive(Message)]
#[rtype(result = "Result<Attached, AttachError>")]
pub struct AttachVisitor {
    pub outbound: Outbound,
    pub last_seq: SeenUpTo,
}

impl Handler<AttachVisitor> for ChatSession {
    type Result = MessageResult<AttachVisitor>;

    fn handle(&mut self, msg: AttachVisitor, _: &mut Context<Self>) -> Self::Result {
        let last_seq = msg.last_seq.seq();
        if last_seq > self.committed_seq {
            return MessageResult(Err(AttachError::InvalidLastSeq { newest: self.committed_seq }));
        }
        self.touch();
        self.call_visitor_back(&msg.outbound);
        self.visitors.push(msg.outbound);
        let oldest_in_memory = self.transcript.front().map_or(self.committed_seq + 1, |m| m.seq);
        let gap = (last_seq + 1 < oldest_in_memory).then_some((last_seq, oldest_in_memory - 1));
        MessageResult(Ok(Attached {
            messages: self.transcript.iter().filter(|m| m.seq > last_seq).cloned().collect(),
            gap,
            status: self.status_frame(),
            agent_typing: self.agent_running,
            staff_read_seq: self.staff_read_seq,
        }))
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct DetachVisitor(pub ConnId);

impl Handler<DetachVisitor> for ChatSession {
    type Result = ();

    fn handle(&mut self, DetachVisitor(conn): DetachVisitor, ctx: &mut Context<Self>) {
        self.visitors.retain(|v| v.id != conn);
        self.call_visitor_gone(conn, ctx);
        self.touch();
    }
}

/// A visitor's chat message, already validated at the socket.
#[derive(Message)]
#[rtype(result = "()")]
pub struct VisitorMessage {
    /// The sender's socket, which gets the ack.
    pub outbound: Outbound,
    pub client_msg_id: ClientMsgId,
    pub body: MessageBody,
}

impl Handler<VisitorMessage> for ChatSession {
    type Result = ();

    fn handle(&mut self, msg: VisitorMessage, ctx: &mut Context<Self>) {
        let ack = AckTo::Visitor(msg.outbound);
        self.enqueue_keyed(writes::MessageKey::Client(msg.client_msg_id.into_string()), MessageRole::Visitor, Origin::Visitor, None, msg.body, ack, ctx);
    }
}

/// The visitor started or stopped typing (shown to staff).
#[derive(Message)]
#[rtype(result = "()")]
pub struct VisitorTyping(pub bool);

impl Handler<VisitorTyping> for ChatSession {
    type Result = ();

    fn handle(&mut self, VisitorTyping(on): VisitorTyping, _: &mut Context<Self>) {
        self.touch();
        self.hub.supervisor.event(SessionEvent::Typing { session_id: self.id, role: MessageRole::Visitor, on });
    }
}

/// A staff member answers the visitor (`role: agent`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StaffSay {
    pub author: crate::domain::Author,
    pub client_msg_id: ClientMsgId,
    pub body: MessageBody,
    /// The dashboard socket to ack, or `None` with `waiter` for HTTP.
    pub outbound: Option<Outbound>,
    pub waiter: Option<oneshot::Sender<Result<Seq, PersistError>>>,
}

impl Handler<StaffSay> for ChatSession {
    type Result = ();

    fn handle(&mut self, msg: StaffSay, ctx: &mut Context<Self>) {
        let ack = match (msg.outbound, msg.waiter) {
            (Some(outbound), _) => AckTo::Staff(outbound),
            (None, Some(waiter)) => AckTo::Waiter(waiter),
            (None, None) => return,
        };
        self.enqueue_keyed(writes::MessageKey::Client(msg.client_msg_id.into_string()), MessageRole::Agent, Origin::Staff, Some(msg.author), msg.body, ack, ctx);
    }
}

/// Staff pause (`true`) or resume (`false`) the AI.
#[derive(Message)]
#[rtype(result = "SessionHandler")]
pub struct Takeover(pub bool);

impl Handler<Takeover> for ChatSession {
    type Result = MessageResult<Takeover>;

    fn handle(&mut self, Takeover(on): Takeover, ctx: &mut Context<Self>) -> Self::Result {
        self.touch();
        self.set_handler(if on { SessionHandler::Human } else { SessionHandler::Ai }, ctx);
        MessageResult(self.handler)
    }
}

/// A staff member typing in the reply box (shown to the visitor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StaffTyping(pub bool);

impl Handler<StaffTyping> for ChatSession {
    type Result = ();

    fn handle(&mut self, StaffTyping(on): StaffTyping, _: &mut Context<Self>) {
        self.set_typing(MessageRole::Agent, on);
    }
}

/// Staff changed the session's status through the API (already stored).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StatusChanged(pub SessionStatus);

impl Handler<StatusChanged> for ChatSession {
    type Result = ();

    fn handle(&mut self, StatusChanged(status): StatusChanged, ctx: &mut Context<Self>) {
        if status == SessionStatus::Resolved {
            // Stored with the status: the AI answers again.
            self.handler = SessionHandler::Ai;
            self.ask_for_rating(ctx);
        }
        if self.status != status {
            self.status = status;
            let frame = self.status_frame();
            self.broadcast(&frame, &[]);
        }
    }
}

/// Staff read the visitor's messages up to the seq (stored): the visitor's
/// sockets are told, once per advance.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StaffRead(pub Seq);

impl Handler<StaffRead> for ChatSession {
    type Result = ();

    fn handle(&mut self, StaffRead(seq): StaffRead, _: &mut Context<Self>) {
        if seq > self.staff_read_seq {
            self.staff_read_seq = seq;
            let frame = ServerFrame::Read { by: MessageRole::Agent, seq }.encode();
            self.broadcast(&frame, &[]);
        }
    }
}

/// The session was deleted: visitors are told (4004) and the actor stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deleted;

impl Handler<Deleted> for ChatSession {
    type Result = ();

    fn handle(&mut self, _: Deleted, ctx: &mut Context<Self>) {
        self.stop_closing(close::SESSION_DELETED, "this conversation was deleted", ctx);
    }
}

/// Several nodes: another node took the conversation's lease. Visitors are
/// closed with 1012 to resume on the new owner, and the actor stops without
/// writing again (its writes would be refused by the fence anyway).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeaseLost;

impl Handler<LeaseLost> for ChatSession {
    type Result = ();

    fn handle(&mut self, _: LeaseLost, ctx: &mut Context<Self>) {
        self.moved_away(ctx);
    }
}

/// The stored messages after `seq`, if they are all still in memory
/// (`None`: read them from PostgreSQL instead).
#[derive(Message)]
#[rtype(result = "Option<Vec<MessageView>>")]
pub struct TranscriptAfter(pub SeenUpTo);

impl Handler<TranscriptAfter> for ChatSession {
    type Result = MessageResult<TranscriptAfter>;

    fn handle(&mut self, TranscriptAfter(after): TranscriptAfter, _: &mut Context<Self>) -> Self::Result {
        let after = after.seq();
        let oldest = self.transcript.front().map_or(self.committed_seq + 1, |m| m.seq);
        if after + 1 < oldest {
            return MessageResult(None);
        }
        MessageResult(Some(self.transcript.iter().filter(|m| m.seq > after).cloned().collect()))
    }
}

/// A message that arrived through a channel (Messenger, WhatsApp, relay),
/// deduplicated on the channel's message id.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ExternalMessage {
    pub external_id: String,
    pub role: MessageRole,
    pub body: MessageBody,
    /// Answered once stored: the webhook replies 200 only then.
    pub waiter: oneshot::Sender<Result<Seq, PersistError>>,
}

impl Handler<ExternalMessage> for ChatSession {
    type Result = ();

    fn handle(&mut self, msg: ExternalMessage, ctx: &mut Context<Self>) {
        // A relayed AI or staff reply is the relaying bot's, and never goes out again.
        let origin = if msg.role == MessageRole::Visitor { Origin::Visitor } else { Origin::Staff };
        let key = writes::MessageKey::External(msg.external_id);
        self.enqueue_keyed(key, msg.role, origin, None, msg.body, AckTo::Waiter(msg.waiter), ctx);
    }
}