//! The conversation actor: one per live conversation, on any channel.
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
//! write commits. So seqs are gap-free even when a write fails: a failed
//! visitor message is dropped (its sender gets a `retry` error and resends the
//! same `client_msg_id`), and a failed AI or system message is retried in
//! place with backoff.
//!
//! A failed write may still have committed (PostgreSQL restarted after the
//! COMMIT, before its reply arrived). So after any failure other than a
//! refusal to queue, the actor writes nothing until it has re-read the truth
//! (`hub::load_written_since`): the rows stored after its last known seq, and
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
    Channel, ChatText, ClientMsgId, Completion, Customer, Handler as SessionHandler, MessageRole, Seq, SessionId,
    SessionStatus,
};
use crate::outbound::{ConnId, Outbound};
use crate::protocol::{MessageView, ServerFrame, StaffFrame, close, error_code, error_frame};

/// Messages waiting for their write; beyond it a visitor is told to retry.
const MAX_QUEUED: usize = 64;
/// Most messages sent in one write.
const MAX_MESSAGES_PER_WRITE: usize = 32;
/// First and longest pause before retrying a failed write of AI/system messages.
const WRITE_RETRY_FIRST: Duration = Duration::from_millis(200);
const WRITE_RETRY_MAX: Duration = Duration::from_secs(5);
/// Partial-answer updates buffered from a streaming agent (extra ones are skipped).
const PARTIALS_BUFFER: usize = 8;
/// What a sender reads when its message could not be stored.
const RETRY_TEXT: &str = "not stored: the database is busy or unavailable; resend this message";
/// What the visitor reads when the agent fails.
pub const FALLBACK_TEXT: &str =
    "Sorry, I'm having trouble answering right now. A member of our team will follow up with you shortly.";

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
    client_msg_id: Option<String>,
    origin: Origin,
    /// The staff member who wrote an `agent` message.
    author_id: Option<Uuid>,
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
    agent_running: bool,
    /// Since when nothing happened and nobody is attached (eviction clock).
    idle_since: Instant,
}

impl ChatSession {
    pub fn new(hub: Arc<Hub>, s: SessionSnapshot) -> Self {
        // A conversation rebuilt with an unanswered visitor message (the hub
        // stopped before the agent answered) gets its answer now.
        let needs_answer = s.transcript.last().is_some_and(|m| m.role == MessageRole::Visitor);
        Self {
            hub,
            id: s.id,
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
            queued: VecDeque::new(),
            in_flight: Vec::new(),
            writing: false,
            unsaved: s.unsaved,
            write_backoff: WRITE_RETRY_FIRST,
            needs_answer,
            agent_running: false,
            idle_since: Instant::now(),
        }
    }

    fn completion(&self) -> Completion {
        Completion::derive(self.completed_at, self.last_activity, Utc::now(), self.hub.config.inactive_after_hours)
    }

    fn status_frame(&self) -> ByteString {
        ServerFrame::Status { completion: self.completion(), status: self.status }.encode()
    }

    /// One encoded frame shared by every attached socket except `skip`.
    fn broadcast(&mut self, frame: &ByteString, skip: &[ConnId]) {
        self.visitors.retain(|v| {
            if !skip.contains(&v.id) {
                v.send(frame.clone());
            }
            !v.is_gone()
        });
    }

    fn is_idle(&self) -> bool {
        self.visitors.is_empty()
            && !self.writing
            && self.queued.is_empty()
            && !self.agent_running
            && self.idle_since.elapsed() >= Duration::from_secs(self.hub.config.limits.session_idle_evict_secs)
    }

    fn touch(&mut self) {
        self.idle_since = Instant::now();
    }

    /// Queues a message from staff, the agent or the system. Completion rules
    /// run here, so a completion commits in the same transaction as the
    /// message that caused it, together with its `lead.completed` outbox row.
    fn enqueue_reply(&mut self, role: MessageRole, text: String, origin: Origin, mut patch: SessionPatch, ctx: &mut Context<Self>) {
        let mut outbox = Vec::new();
        if matches!(role, MessageRole::Ai | MessageRole::Agent) {
            self.check_completion(&text, &mut patch, &mut outbox);
        }
        outbox.extend(self.outgoing(&text));
        self.queued.push_back(Pending { role, text, client_msg_id: None, origin, author_id: None, external_id: None, ack_to: Vec::new(), patch, outbox });
        self.write(ctx);
    }

    /// The `lead.completed` event. The notifier adds the transcript when it
    /// delivers (it is committed by then), so the row stays small.
    fn lead_completed(&self, rule: &str, at: DateTime<Utc>) -> OutboxRow {
        OutboxRow {
            event_type: "lead.completed",
            payload: json!({
                "session_id": self.id,
                "channel": self.channel,
                "site_id": self.site_id,
                "customer": self.customer,
                "rule": rule,
                "completed_at": crate::protocol::rfc3339::format(&at),
            }),
            idempotency_key: format!("lead.completed/{}", self.id),
        }
    }

    /// Sends the queued messages as one write, unless one is in flight.
    fn write(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.queued.is_empty() {
            return;
        }
        let take = self.queued.len().min(MAX_MESSAGES_PER_WRITE);
        self.in_flight = self.queued.drain(..take).collect();
        self.writing = true;
        let now = Utc::now();
        let mut patch = SessionPatch::default();
        let mut outbox = Vec::new();
        let mut messages = Vec::with_capacity(self.in_flight.len());
        for (i, pending) in self.in_flight.iter().enumerate() {
            patch.merge(pending.patch.clone());
            outbox.extend(pending.outbox.iter().cloned());
            messages.push(MessageRow {
                seq: self.committed_seq + 1 + i as Seq,
                role: pending.role,
                text: pending.text.clone(),
                client_msg_id: pending.client_msg_id.clone(),
                external_id: pending.external_id.clone(),
                author_id: pending.author_id,
                latency_ms: match pending.origin {
                    Origin::Agent { latency_ms } => Some(latency_ms),
                    _ => None,
                },
                created_at: now,
            });
        }
        let views: Vec<MessageView> = messages
            .iter()
            .map(|m| MessageView { seq: m.seq, role: m.role, text: m.text.clone(), created_at: m.created_at })
            .collect();
        let write = SessionWrite { session_id: self.id, channel: self.channel, create: self.unsaved.clone(), messages, patch, outbox };
        let persistence = self.hub.persistence.clone();
        async move { persistence.persist(write).await }
            .into_actor(self)
            .map(move |outcome, actor, ctx| actor.written(outcome, views, ctx))
            .spawn(ctx);
    }

    /// A write finished: on success, ack, fan out and move on. A write that
    /// was refused before it reached PostgreSQL failed for sure; any other
    /// failure may have committed, so its outcome is re-read first.
    fn written(&mut self, outcome: Result<(), PersistError>, views: Vec<MessageView>, ctx: &mut Context<Self>) {
        match outcome {
            Ok(()) => {
                self.writing = false;
                self.write_backoff = WRITE_RETRY_FIRST;
                self.row_stored();
                let done = std::mem::take(&mut self.in_flight);
                let mut changed = false;
                for (pending, view) in done.into_iter().zip(views) {
                    changed |= self.stored(pending, view);
                }
                self.after_stored(changed, ctx);
                self.write(ctx);
            }
            Err(PersistError::Overloaded) => {
                self.writing = false;
                let done = std::mem::take(&mut self.in_flight);
                self.not_stored(done, &PersistError::Overloaded, ctx);
            }
            Err(e) => {
                tracing::warn!(session = %self.id, error = %e, "a conversation write failed; re-reading what was stored");
                metrics::counter!("chathub_write_reconciliations_total").increment(1);
                // Senders hear at once that it is not stored for sure, and
                // resend with the same id: a resend joins the message being
                // reconciled, and is acked if the re-read finds it stored.
                let told: Vec<(Vec<AckTo>, Option<String>)> =
                    self.in_flight.iter_mut().map(|p| (std::mem::take(&mut p.ack_to), p.client_msg_id.clone())).collect();
                for (targets, id) in told {
                    self.acknowledge(targets, id.as_deref(), Err(e.clone()));
                }
                self.reconcile(views, ctx);
            }
        }
    }

    /// The session row is stored: the hub stops offering the conversation
    /// as unsaved.
    fn row_stored(&mut self) {
        if self.unsaved.take().is_some() {
            self.hub.session_saved(self.id);
        }
    }

    /// Re-reads what is stored after `committed_seq` (retrying with backoff
    /// while PostgreSQL is away), then settles the in-flight write.
    fn reconcile(&mut self, views: Vec<MessageView>, ctx: &mut Context<Self>) {
        let external_ids: Vec<String> = self.in_flight.iter().filter_map(|p| p.external_id.clone()).collect();
        let (db, id, after) = (self.hub.db.clone(), self.id, self.committed_seq);
        let channel = self.channel;
        async move { super::hub::load_written_since(&db, id, channel, after, &external_ids).await }
            .into_actor(self)
            .map(move |truth, actor, ctx| match truth {
                Ok(truth) => actor.settle(truth, views, ctx),
                Err(e) => {
                    let delay = actor.write_backoff;
                    actor.write_backoff = (actor.write_backoff * 2).min(WRITE_RETRY_MAX);
                    tracing::warn!(session = %actor.id, error = %e, "could not re-read a failed write; trying again");
                    ctx.run_later(delay, move |actor, ctx| actor.reconcile(views, ctx));
                }
            })
            .spawn(ctx);
    }

    /// Settles the in-flight write against what PostgreSQL really holds.
    fn settle(&mut self, truth: WrittenSince, views: Vec<MessageView>, ctx: &mut Context<Self>) {
        self.writing = false;
        if truth.session_exists {
            self.row_stored();
        }
        let mut stored_rows: VecDeque<MessageView> = VecDeque::new();
        let mut stored_keys: HashMap<(Seq, MessageRole), (Option<String>, Option<String>, String)> = HashMap::new();
        for row in truth.rows {
            stored_keys.insert((row.view.seq, row.view.role), (row.client_msg_id.clone(), row.external_id.clone(), row.view.text.clone()));
            stored_rows.push_back(row.view);
        }
        let done = std::mem::take(&mut self.in_flight);
        let mut changed = false;
        let mut failed = Vec::new();
        for (pending, view) in done.into_iter().zip(views) {
            // The whole write is one transaction: its rows are where it put them.
            let found = stored_keys.get(&(view.seq, pending.role)).is_some_and(|(client, external, text)| {
                *client == pending.client_msg_id && *external == pending.external_id && *text == pending.text
            });
            if found {
                stored_rows.retain(|r| r.seq != view.seq);
                changed |= self.stored(pending, view);
            } else if pending.external_id.as_ref().is_some_and(|e| truth.taken_elsewhere.contains(e)) {
                let e = pending.external_id.clone().unwrap_or_default();
                tracing::warn!(session = %self.id, external_id = %e, "a message id is already stored in another conversation; not retried");
                self.acknowledge(pending.ack_to, None, Err(PersistError::Conflict(e)));
            } else {
                failed.push(pending);
            }
        }
        // Rows nobody here was waiting for (written by another writer) still
        // move the seq on, so the next write cannot reuse one.
        for view in stored_rows {
            if view.seq > self.committed_seq {
                self.committed_seq = view.seq;
                self.transcript.push_back(view);
                if self.transcript.len() > TRANSCRIPT_IN_MEMORY {
                    self.transcript.pop_front();
                }
            }
        }
        self.committed_seq = self.committed_seq.max(truth.last_seq);
        if changed {
            self.write_backoff = WRITE_RETRY_FIRST;
        }
        self.after_stored(changed, ctx);
        if failed.is_empty() {
            self.write(ctx);
        } else {
            self.not_stored(failed, &PersistError::Stopped, ctx);
        }
    }

    /// One message is committed: ack its senders, fan it out, remember it.
    /// Returns whether the session's status or completion changed with it.
    fn stored(&mut self, pending: Pending, view: MessageView) -> bool {
        self.committed_seq = view.seq;
        self.last_activity = view.created_at;
        if let Some(id) = &pending.client_msg_id {
            self.client_ids.insert(id.clone(), view.seq);
        }
        if let Some(id) = &pending.external_id {
            self.external_ids.insert(id.clone(), view.seq);
        }
        let skip: Vec<ConnId> = pending.ack_to.iter().filter_map(AckTo::visitor_conn).collect();
        self.acknowledge(pending.ack_to, pending.client_msg_id.as_deref(), Ok(view.seq));
        let frame = ServerFrame::Message { message: &view }.encode();
        // A visitor's own socket has its ack; their other tabs get the message.
        self.broadcast(&frame, &skip);
        if pending.origin == Origin::Visitor {
            self.needs_answer = true;
        }
        let view = Arc::new(view);
        self.hub.supervisor.event(SessionEvent::MessageStored { session_id: self.id, message: view.clone() });
        self.transcript.push_back(Arc::unwrap_or_clone(view));
        if self.transcript.len() > TRANSCRIPT_IN_MEMORY {
            self.transcript.pop_front();
        }
        pending.patch.status.is_some() || pending.patch.completion.is_some()
    }

    /// After messages were stored: visitors see a changed status, dashboards
    /// the new summary, and the agent may answer.
    fn after_stored(&mut self, status_changed: bool, ctx: &mut Context<Self>) {
        if status_changed {
            let frame = self.status_frame();
            self.broadcast(&frame, &[]);
        }
        self.hub.supervisor.event(SessionEvent::SessionChanged { session_id: self.id });
        self.maybe_run_agent(ctx);
    }

    /// Messages that were not stored: senders resend theirs (they are told
    /// to retry); the actor's own replies are retried in place with backoff.
    fn not_stored(&mut self, failed: Vec<Pending>, e: &PersistError, ctx: &mut Context<Self>) {
        let mut kept = Vec::new();
        for pending in failed {
            if matches!(pending.origin, Origin::Visitor | Origin::Staff) {
                self.acknowledge(pending.ack_to, pending.client_msg_id.as_deref(), Err(e.clone()));
            } else {
                kept.push(pending);
            }
        }
        for pending in kept.into_iter().rev() {
            self.queued.push_front(pending);
        }
        if !self.queued.is_empty() {
            let delay = self.write_backoff;
            self.write_backoff = (self.write_backoff * 2).min(WRITE_RETRY_MAX);
            ctx.run_later(delay, |actor, ctx| actor.write(ctx));
        }
    }

    /// Tells each target whether the message was stored.
    fn acknowledge(&self, targets: Vec<AckTo>, client_msg_id: Option<&str>, outcome: Result<Seq, PersistError>) {
        for target in targets {
            match (target, &outcome) {
                (AckTo::Waiter(waiter), _) => {
                    let _ = waiter.send(outcome.clone());
                }
                (AckTo::Visitor(outbound), Ok(seq)) => {
                    let id = client_msg_id.unwrap_or_default();
                    outbound.send(ServerFrame::Ack { client_msg_id: id, seq: *seq }.encode());
                }
                (AckTo::Staff(outbound), Ok(seq)) => {
                    let id = client_msg_id.unwrap_or_default();
                    outbound.send(StaffFrame::Ack { session_id: self.id, client_msg_id: id, seq: *seq }.encode());
                }
                (AckTo::Visitor(outbound), Err(_)) => {
                    outbound.send(error_frame(error_code::RETRY, RETRY_TEXT, client_msg_id));
                }
                (AckTo::Staff(outbound), Err(_)) => {
                    outbound.send(StaffFrame::error(self.id, error_code::RETRY, RETRY_TEXT, client_msg_id));
                }
            }
        }
    }

    fn has_pending_reply(&self) -> bool {
        self.queued.iter().chain(self.in_flight.iter()).any(|p| !matches!(p.origin, Origin::Visitor | Origin::Staff))
    }

    /// Queues a message that a client (visitor or staff) sent with an id,
    /// deduplicating on that id.
    fn enqueue_client_message(&mut self, role: MessageRole, origin: Origin, author_id: Option<Uuid>, id: ClientMsgId, text: ChatText, ack: AckTo, ctx: &mut Context<Self>) {
        self.touch();
        let id = id.as_str();
        // Stored before: ack again with the same seq, store nothing.
        if let Some(&seq) = self.client_ids.get(id) {
            self.acknowledge(vec![ack], Some(id), Ok(seq));
            return;
        }
        // Still on its way: ack this sender too once it is stored.
        if let Some(pending) = self
            .queued
            .iter_mut()
            .chain(self.in_flight.iter_mut())
            .find(|p| p.client_msg_id.as_deref() == Some(id))
        {
            pending.ack_to.push(ack);
            return;
        }
        if self.queued.len() >= MAX_QUEUED {
            self.acknowledge(vec![ack], Some(id), Err(PersistError::Overloaded));
            return;
        }
        let text = text.into_string();
        let mut patch = SessionPatch::default();
        let mut outbox = Vec::new();
        if role == MessageRole::Agent {
            self.check_completion(&text, &mut patch, &mut outbox);
            outbox.extend(self.outgoing(&text));
        }
        self.queued.push_back(Pending {
            role,
            text,
            client_msg_id: Some(id.to_owned()),
            origin,
            author_id,
            external_id: None,
            ack_to: vec![ack],
            patch,
            outbox,
        });
        self.write(ctx);
    }

    /// The outbox row that carries a reply out to Messenger or WhatsApp
    /// (committed with the message, retried by the notifier).
    fn outgoing(&self, text: &str) -> Option<OutboxRow> {
        let event_type = match self.channel {
            Channel::Messenger => "messenger.send",
            Channel::Whatsapp => "whatsapp.send",
            _ => return None,
        };
        if self.relay {
            return None;
        }
        let recipient = self.external_id.as_deref()?;
        Some(OutboxRow {
            event_type,
            payload: json!({ "session_id": self.id, "recipient": recipient, "text": text }),
            idempotency_key: format!("{event_type}/{}", Uuid::new_v4()),
        })
    }

    /// Runs the completion rules on an AI or staff message; a match completes
    /// the conversation with this message's write.
    fn check_completion(&mut self, text: &str, patch: &mut SessionPatch, outbox: &mut Vec<OutboxRow>) {
        if self.completed_at.is_some() {
            return;
        }
        if let Some(rule) = self.hub.rules.current().first_match(text) {
            let now = Utc::now();
            self.completed_at = Some(now);
            self.completion_rule = Some(rule.to_owned());
            patch.completion = Some((rule.to_owned(), now));
            outbox.push(self.lead_completed(rule, now));
            metrics::counter!("chathub_completions_total").increment(1);
        }
    }

    /// Pauses (human) or resumes (ai) the agent, telling the visitor.
    fn set_handler(&mut self, handler: SessionHandler, ctx: &mut Context<Self>) {
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

    /// Starts the agent when a stored visitor message awaits an answer, the
    /// AI is in charge, and no answer is already on its way.
    fn maybe_run_agent(&mut self, ctx: &mut Context<Self>) {
        if !self.needs_answer || self.relay || self.agent_running || self.handler != SessionHandler::Ai || self.has_pending_reply() {
            return;
        }
        let Some(last_text) = self.transcript.back().map(|m| m.text.clone()) else { return };
        self.needs_answer = false;
        self.agent_running = true;
        self.set_typing(MessageRole::Ai, true);
        if let (Channel::Messenger, Some(psid)) = (self.channel, self.external_id.clone()) {
            let (http, config) = (self.hub.http.clone(), self.hub.config.clone());
            actix::spawn(async move { crate::delivery::meta::messenger_typing(&http, &config, &psid).await });
        }

        let (partials_tx, mut partials_rx) = mpsc::channel::<String>(PARTIALS_BUFFER);
        let address = ctx.address();
        actix::spawn(async move {
            while let Some(text) = partials_rx.recv().await {
                address.do_send(AgentPartial(text));
            }
        });
        let request = AgentRequest {
            session_id: self.id,
            channel: self.channel,
            message: last_text,
            history: self
                .transcript
                .iter()
                .rev()
                .take(HISTORY_LEN)
                .rev()
                .map(|m| HistoryItem { role: m.role, text: m.text.clone() })
                .collect(),
            customer: self.customer.clone(),
            partials: Some(partials_tx),
        };
        let timeout_secs = self.hub.config.limits.agent_timeout_secs;
        let call = tokio::time::timeout(Duration::from_secs(timeout_secs), self.hub.agent.reply(request));
        let started = Instant::now();
        call.into_actor(self)
            .map(move |outcome, actor, ctx| {
                let outcome = outcome.unwrap_or(Err(AgentError::Timeout(timeout_secs)));
                actor.agent_answered(outcome, started.elapsed(), ctx);
            })
            .spawn(ctx);
    }

    fn agent_answered(&mut self, outcome: Result<AgentReply, AgentError>, took: Duration, ctx: &mut Context<Self>) {
        self.agent_running = false;
        self.set_typing(MessageRole::Ai, false);
        let latency_ms = took.as_millis().min(i32::MAX as u128) as i32;
        metrics::histogram!("chathub_agent_seconds").record(took.as_secs_f64());
        match outcome {
            // Staff took over while the agent was thinking: their word wins.
            Ok(_) if self.handler == SessionHandler::Human => {}
            Ok(reply) => {
                let mut patch = SessionPatch::default();
                if let Some(customer) = reply.customer {
                    self.customer.merge(customer.clone());
                    patch.customer = customer;
                }
                if reply.escalate {
                    // Escalation pauses the AI until staff hand the conversation back.
                    self.status = SessionStatus::Escalated;
                    self.handler = SessionHandler::Human;
                    patch.status = Some(SessionStatus::Escalated);
                    patch.handler = Some(SessionHandler::Human);
                    patch.escalated_at = Some(Utc::now());
                    metrics::counter!("chathub_escalations_total").increment(1);
                }
                self.enqueue_reply(MessageRole::Ai, reply.text, Origin::Agent { latency_ms }, patch, ctx);
            }
            Err(e) => {
                metrics::counter!("chathub_agent_failures_total").increment(1);
                tracing::warn!(session = %self.id, agent = self.hub.agent.name(), error = %e, "the agent failed; sending the fallback");
                self.hub.record_error(
                    "agent",
                    e.to_string(),
                    json!({ "agent": self.hub.agent.name(), "latency_ms": latency_ms }),
                    Some(self.id),
                );
                self.enqueue_reply(MessageRole::System, FALLBACK_TEXT.to_owned(), Origin::System, SessionPatch::default(), ctx);
            }
        }
        self.maybe_run_agent(ctx);
    }

    fn set_typing(&mut self, role: MessageRole, on: bool) {
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
        self.hub.forget(self.id, &ctx.address(), external);
        if self.unsaved.is_some() {
            // Nobody wrote: the conversation is forgotten with its actor.
            self.hub.forget_unsaved(self.id);
        }
    }
}

/// Why a socket could not attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachError {
    /// `last_seq` is negative or past the newest stored message.
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
}

/// A visitor socket joins the conversation, having seen up to `last_seq`.
/// Attaching and taking the backlog happen in one step, so nothing committed
/// in between is missed or sent twice.
#[derive(Message)]
#[rtype(result = "Result<Attached, AttachError>")]
pub struct AttachVisitor {
    pub outbound: Outbound,
    pub last_seq: Seq,
}

impl Handler<AttachVisitor> for ChatSession {
    type Result = MessageResult<AttachVisitor>;

    fn handle(&mut self, msg: AttachVisitor, _: &mut Context<Self>) -> Self::Result {
        if msg.last_seq < 0 || msg.last_seq > self.committed_seq {
            return MessageResult(Err(AttachError::InvalidLastSeq { newest: self.committed_seq }));
        }
        self.touch();
        self.visitors.push(msg.outbound);
        let oldest_in_memory = self.transcript.front().map_or(self.committed_seq + 1, |m| m.seq);
        let gap = (msg.last_seq + 1 < oldest_in_memory).then_some((msg.last_seq, oldest_in_memory - 1));
        MessageResult(Ok(Attached {
            messages: self.transcript.iter().filter(|m| m.seq > msg.last_seq).cloned().collect(),
            gap,
            status: self.status_frame(),
            agent_typing: self.agent_running,
        }))
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct DetachVisitor(pub ConnId);

impl Handler<DetachVisitor> for ChatSession {
    type Result = ();

    fn handle(&mut self, DetachVisitor(conn): DetachVisitor, _: &mut Context<Self>) {
        self.visitors.retain(|v| v.id != conn);
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
    pub text: ChatText,
}

impl Handler<VisitorMessage> for ChatSession {
    type Result = ();

    fn handle(&mut self, msg: VisitorMessage, ctx: &mut Context<Self>) {
        let ack = AckTo::Visitor(msg.outbound);
        self.enqueue_client_message(MessageRole::Visitor, Origin::Visitor, None, msg.client_msg_id, msg.text, ack, ctx);
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

/// The answer so far from a streaming agent.
#[derive(Message)]
#[rtype(result = "()")]
struct AgentPartial(String);

impl Handler<AgentPartial> for ChatSession {
    type Result = ();

    fn handle(&mut self, AgentPartial(text): AgentPartial, _: &mut Context<Self>) {
        if self.agent_running {
            let frame = ServerFrame::Partial { role: MessageRole::Ai, text: &text }.encode();
            self.broadcast(&frame, &[]);
        }
    }
}

/// A staff member answers the visitor (`role: agent`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StaffSay {
    pub author_id: Uuid,
    pub client_msg_id: ClientMsgId,
    pub text: ChatText,
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
        self.enqueue_client_message(MessageRole::Agent, Origin::Staff, Some(msg.author_id), msg.client_msg_id, msg.text, ack, ctx);
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

    fn handle(&mut self, StatusChanged(status): StatusChanged, _: &mut Context<Self>) {
        if self.status != status {
            self.status = status;
            let frame = self.status_frame();
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
        for visitor in self.visitors.drain(..) {
            visitor.close(close::SESSION_DELETED, "this conversation was deleted");
        }
        for pending in self.queued.drain(..).chain(self.in_flight.drain(..)) {
            for target in pending.ack_to {
                if let AckTo::Waiter(waiter) = target {
                    let _ = waiter.send(Err(PersistError::Stopped));
                }
            }
        }
        ctx.stop();
    }
}

/// The stored messages after `seq`, if they are all still in memory
/// (`None`: read them from PostgreSQL instead).
#[derive(Message)]
#[rtype(result = "Option<Vec<MessageView>>")]
pub struct TranscriptAfter(pub Seq);

impl Handler<TranscriptAfter> for ChatSession {
    type Result = MessageResult<TranscriptAfter>;

    fn handle(&mut self, TranscriptAfter(after): TranscriptAfter, _: &mut Context<Self>) -> Self::Result {
        let oldest = self.transcript.front().map_or(self.committed_seq + 1, |m| m.seq);
        if after < 0 || after + 1 < oldest {
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
    pub text: ChatText,
    /// Answered once stored: the webhook replies 200 only then.
    pub waiter: oneshot::Sender<Result<Seq, PersistError>>,
}

impl Handler<ExternalMessage> for ChatSession {
    type Result = ();

    fn handle(&mut self, msg: ExternalMessage, ctx: &mut Context<Self>) {
        self.touch();
        let id = msg.external_id;
        if let Some(&seq) = self.external_ids.get(&id) {
            let _ = msg.waiter.send(Ok(seq));
            return;
        }
        if let Some(pending) = self
            .queued
            .iter_mut()
            .chain(self.in_flight.iter_mut())
            .find(|p| p.external_id.as_deref() == Some(id.as_str()))
        {
            pending.ack_to.push(AckTo::Waiter(msg.waiter));
            return;
        }
        if self.queued.len() >= MAX_QUEUED {
            let _ = msg.waiter.send(Err(PersistError::Overloaded));
            return;
        }
        let text = msg.text.into_string();
        let mut patch = SessionPatch::default();
        let mut outbox = Vec::new();
        // A relayed AI/staff reply can complete the conversation too.
        if matches!(msg.role, MessageRole::Ai | MessageRole::Agent) {
            self.check_completion(&text, &mut patch, &mut outbox);
        }
        let origin = if msg.role == MessageRole::Visitor { Origin::Visitor } else { Origin::Staff };
        self.queued.push_back(Pending {
            role: msg.role,
            text,
            client_msg_id: None,
            origin,
            author_id: None,
            external_id: Some(id),
            ack_to: vec![AckTo::Waiter(msg.waiter)],
            patch,
            outbox,
        });
        self.write(ctx);
    }
}
