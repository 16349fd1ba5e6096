//! The conversation actor: one per live conversation, on any channel.
//!
//! By job: this file holds the actor's state and lifecycle; `snapshot` what
//! it starts from; `messages` what it is sent (one type and handler each);
//! `writes` the write pipeline (dedupe, seq assignment, acks, the
//! reconciliation of failed writes); `agent` the AI's turn; `outbox` the
//! completion rules and the notifications they queue.
//!
//! Inputs: `AttachVisitor`/`DetachVisitor` (sockets come and go),
//! `VisitorMessage`, `VisitorTyping`, and its own completions (a write
//! committed, the agent answered). Outputs: writes to the persistence actor,
//! frames to the attached visitor sockets, events to the supervisor, calls
//! to the agent.
//!
//! Ordering and durability: the actor has at most one write in flight. Each
//! message gets its `seq` when its write is sent (last committed + 1, …), and
//! nothing about it — ack, frame, agent call — leaves the actor before that
//! write commits. (An agent that answers without leaving the process, the
//! demo agent, is asked before: its plain answer goes into the same write
//! as the messages it answers, see `agent::instant_answer`.) So seqs are gap-free even when a write fails: a failed
//! visitor message is dropped (its sender gets a `retry` error and resends the
//! same `client_msg_id`), and a failed AI or system message is retried in
//! place with backoff.
//!
//! A failed write may still have committed (PostgreSQL restarted after the
//! COMMIT, before its reply arrived). So after any failure other than a
//! refusal to queue, the actor writes nothing until it has re-read the truth
//! (`store::conversations::written_since`): the rows stored after its last known seq, and
//! which of its channel message ids are already stored in other
//! conversations. In-flight messages found stored are acked as stored; the
//! rest are treated as failed; a message id taken elsewhere is a permanent
//! conflict, never retried. The actor's seq then continues after what is
//! really stored, so a lost reply can never make it reuse a taken seq.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::hub::{Hub, TRANSCRIPT_IN_MEMORY, WrittenSince};
use super::persistence::{MessageRow, NewSessionRow, OutboxRow, PersistError, SessionPatch, SessionWrite};
use super::supervisor::SessionEvent;
use crate::agents::{AgentError, AgentReply, AgentRequest, HISTORY_LEN, HistoryItem};
use crate::domain::{
    Attachment, Channel, ClientMsgId, Csat, MessageBody, Completion, Customer, Handler as SessionHandler, MessageRole, Seq, SessionId,
    SessionStatus,
};
use crate::outbound::{ConnId, Outbound};
use crate::protocol::{MessageView, ServerFrame, StaffFrame, close, error_code, error_frame};

mod agent;
pub mod call;
mod csat;
mod messages;
mod outbox;
mod snapshot;
mod writes;

pub use agent::FALLBACK_TEXT;
pub use messages::*;
pub use snapshot::SessionSnapshot;

/// Messages waiting for their write; beyond it a visitor is told to retry.
const MAX_QUEUED: usize = 64;
/// Most messages sent in one write.
const MAX_MESSAGES_PER_WRITE: usize = 32;
/// First and longest pause before retrying a failed write of AI/system messages.
const WRITE_RETRY_FIRST: Duration = Duration::from_millis(200);
const WRITE_RETRY_MAX: Duration = Duration::from_secs(5);
/// What a sender reads when its message could not be stored.
const RETRY_TEXT: &str = "not stored: the database is busy or unavailable; resend this message";

/// Who asked for a message to be stored.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Origin {
    Visitor,
    Agent { latency_ms: i32 },
    Staff,
    System,
}

/// Who hears that a message was stored (or not).
enum AckTo {
    /// A visitor socket: `{"type":"ack","client_msg_id","seq"}`.
    Visitor(Outbound),
    /// A dashboard socket: the same, with `session_id`.
    Staff(Outbound),
    /// An HTTP request waiting for the outcome.
    Waiter(oneshot::Sender<Result<Seq, PersistError>>),
}

impl AckTo {
    fn visitor_conn(&self) -> Option<ConnId> {
        match self {
            AckTo::Visitor(outbound) => Some(outbound.id),
            _ => None,
        }
    }
}

/// A message (and the session changes that must commit with it) waiting for
/// its write.
struct Pending {
    role: MessageRole,
    text: String,
    attachments: Vec<Attachment>,
    /// A visitor's answer to the rating question: the agent does not reply.
    is_rating: bool,
    /// An agent's answer written with the visitor messages it answers
    /// (`instant_answer`).
    instant: bool,
    client_msg_id: Option<String>,
    origin: Origin,
    /// The staff member who wrote an `agent` message.
    author: Option<crate::domain::Author>,
    /// The channel's id for this message (dedupe of webhook retries).
    external_id: Option<String>,
    /// Whom to tell once stored (a resend from a reconnected socket adds one).
    ack_to: Vec<AckTo>,
    patch: SessionPatch,
    outbox: Vec<OutboxRow>,
}

pub struct ChatSession {
    hub: Arc<Hub>,
    id: SessionId,
    channel: Channel,
    site_id: Option<Uuid>,
    customer: Customer,
    status: SessionStatus,
    handler: SessionHandler,
    completed_at: Option<DateTime<Utc>>,
    completion_rule: Option<String>,
    last_activity: DateTime<Utc>,
    /// The highest seq known to be committed.
    committed_seq: Seq,
    /// The newest `TRANSCRIPT_IN_MEMORY` messages, for resumes and agent history.
    transcript: VecDeque<MessageView>,
    /// Every stored `client_msg_id` of this conversation → its seq (dedupe).
    client_ids: HashMap<String, Seq>,
    /// Every stored channel message id → its seq (webhook retries dedupe).
    external_ids: HashMap<String, Seq>,
    /// The channel's conversation key: where Messenger/WhatsApp replies go.
    external_id: Option<String>,
    /// Relayed conversations are answered by the relaying bot, not ours.
    relay: bool,
    /// Attached visitor sockets (a visitor may have several tabs open).
    visitors: Vec<Outbound>,
    /// How far staff have read the visitor's messages (stored; resumes get it).
    staff_read_seq: Seq,
    /// Waiting for the next write, bounded by `MAX_QUEUED`.
    queued: VecDeque<Pending>,
    /// The write in flight (at most one), or the one being reconciled.
    in_flight: Vec<Pending>,
    /// A write is in flight or its outcome is being re-read: nothing else
    /// is written meanwhile.
    writing: bool,
    /// The session row, until the first write stores it.
    unsaved: Option<NewSessionRow>,
    write_backoff: Duration,
    /// A visitor message is stored that the agent has not answered yet.
    needs_answer: bool,
    /// Messenger/WhatsApp: asked the customer for a rating; they gave one.
    csat_asked: bool,
    csat_given: bool,
    /// A rating question or thanks to send after the current write.
    rating_prompt: Option<csat::RatingPrompt>,
    /// The video call running in this conversation, if any.
    call: Option<call::Call>,
    agent_running: bool,
    /// Agent calls started (a stuck typing check names the run it is about).
    agent_runs: u64,
    /// The AI's last answer and how many times in a row it was the same.
    last_ai_text: Option<String>,
    ai_repeats: u32,
    /// Since when nothing happened and nobody is attached (eviction clock).
    idle_since: Instant,
    /// Several nodes: the fencing number of this node's lease, sent with
    /// every write (`None` on a single node).
    fence: Option<i64>,
}

impl ChatSession {
    pub fn new(hub: Arc<Hub>, snapshot: SessionSnapshot) -> Self {
        let s = snapshot.stored;
        // A conversation rebuilt with an unanswered visitor message (the hub
        // stopped before the agent answered) gets its answer now.
        let needs_answer = s.transcript.last().is_some_and(|m| m.role == MessageRole::Visitor);
        Self {
            hub,
            id: snapshot.id,
            channel: s.channel,
            site_id: s.site_id,
            customer: s.customer,
            status: s.status,
            handler: s.handler,
            completed_at: s.completed_at,
            completion_rule: s.completion_rule,
            last_activity: s.last_activity,
            committed_seq: s.last_seq,
            transcript: s.transcript.into(),
            client_ids: s.client_ids,
            external_ids: s.external_ids,
            external_id: s.external_id,
            relay: s.relay,
            visitors: Vec::new(),
            staff_read_seq: s.staff_read_seq,
            queued: VecDeque::new(),
            in_flight: Vec::new(),
            writing: false,
            unsaved: snapshot.unsaved,
            write_backoff: WRITE_RETRY_FIRST,
            needs_answer,
            csat_asked: s.csat_asked,
            csat_given: s.csat_given,
            rating_prompt: None,
            call: None,
            agent_running: false,
            agent_runs: 0,
            last_ai_text: None,
            ai_repeats: 0,
            idle_since: Instant::now(),
            fence: snapshot.fence,
        }
    }

    pub(super) fn completion(&self) -> Completion {
        Completion::derive(self.completed_at, self.last_activity, Utc::now(), self.hub.config.inactive_after_hours)
    }

    pub(super) fn status_frame(&self) -> ByteString {
        ServerFrame::Status { completion: self.completion(), status: self.status }.encode()
    }

    /// One encoded frame shared by every attached socket except `skip`.
    pub(super) fn broadcast(&mut self, frame: &ByteString, skip: &[ConnId]) {
        self.visitors.retain(|v| {
            if !skip.contains(&v.id) {
                v.send(frame.clone());
            }
            !v.is_gone()
        });
    }

    pub(super) fn is_idle(&self) -> bool {
        self.visitors.is_empty()
            && !self.writing
            && self.queued.is_empty()
            && !self.agent_running
            && self.idle_since.elapsed() >= Duration::from_secs(self.hub.config.limits.session_idle_evict_secs)
    }

    pub(super) fn touch(&mut self) {
        self.idle_since = Instant::now();
    }

    /// Pauses (human) or resumes (ai) the agent, telling the visitor.
    pub(super) fn set_handler(&mut self, handler: SessionHandler, ctx: &mut Context<Self>) {
        if self.handler == handler {
            return;
        }
        self.handler = handler;
        let notice = match handler {
            SessionHandler::Human => "A member of our team has joined the conversation.",
            SessionHandler::Ai => "You're chatting with our virtual assistant again.",
        };
        let patch = SessionPatch { handler: Some(handler), ..Default::default() };
        self.enqueue_reply(MessageRole::System, notice.to_owned(), Origin::System, patch, ctx);
        if handler == SessionHandler::Ai {
            // Anything the visitor said meanwhile gets an answer.
            self.needs_answer = self.transcript.back().is_some_and(|m| m.role == MessageRole::Visitor);
        }
    }

    /// Closes every visitor with `code`, tells every waiting sender it was
    /// not stored (sockets heard `retry` or resend on reconnect), and stops.
    pub(super) fn stop_closing(&mut self, code: u16, reason: &'static str, ctx: &mut Context<Self>) {
        for visitor in self.visitors.drain(..) {
            visitor.close(code, reason);
        }
        let pending: Vec<Pending> = self.queued.drain(..).chain(self.in_flight.drain(..)).collect();
        for pending in pending {
            let id = pending.client_msg_id.clone();
            self.acknowledge(pending.ack_to, id.as_deref(), Err(PersistError::Stopped));
        }
        ctx.stop();
    }

    /// Several nodes: the conversation now runs elsewhere (lease lost, or a
    /// write refused by the fence). Its clients resume on the new owner.
    pub(super) fn moved_away(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(session = %self.id, "the conversation moved to another node; closing its sockets here");
        self.fence = None;
        self.stop_closing(close::MOVED, "the conversation moved to another server; reconnect", ctx);
    }

    pub(super) fn set_typing(&mut self, role: MessageRole, on: bool) {
        let frame = ServerFrame::Typing { role, on }.encode();
        self.broadcast(&frame, &[]);
        self.hub.supervisor.event(SessionEvent::Typing { session_id: self.id, role, on });
    }
}

impl Actor for ChatSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(super::handles::SESSION_MAILBOX);
        let evict_after = Duration::from_secs(self.hub.config.limits.session_idle_evict_secs);
        let check_every = (evict_after / 2).clamp(Duration::from_millis(100), Duration::from_secs(30));
        ctx.run_interval(check_every, |actor, ctx| {
            if actor.is_idle() {
                ctx.stop();
            }
        });
        self.maybe_run_agent(ctx);
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        let external = self.external_id.clone().map(|key| (self.channel, key));
        self.hub.forget(self.id, &ctx.address(), external, self.fence);
        if self.unsaved.is_some() {
            // Nobody wrote: the conversation is forgotten with its actor.
            self.hub.forget_unsaved(self.id);
        }
    }
}
