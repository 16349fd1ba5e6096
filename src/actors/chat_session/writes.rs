//! The write pipeline: messages queue with their session changes and
//! outbox rows, go out as one write at a time with the next seqs, and are
//! acked, fanned out and remembered once committed. A failed write whose
//! outcome is unknown is re-read and settled before anything else is written.

use std::collections::BTreeMap;

use super::*;
use crate::actors::hub::WrittenRow;

impl ChatSession {
    /// Queues a message from staff, the agent or the system. Completion rules
    /// run here, so a completion commits in the same transaction as the
    /// message that caused it, together with its `lead.completed` outbox row.
    pub(super) fn enqueue_reply(&mut self, role: MessageRole, text: String, origin: Origin, mut patch: SessionPatch, ctx: &mut Context<Self>) {
        let mut outbox = Vec::new();
        if matches!(role, MessageRole::Ai | MessageRole::Agent) {
            self.check_completion(&text, &mut patch, &mut outbox);
        }
        outbox.extend(self.outgoing(&text, &[]));
        self.queued.push_back(Pending { role, text, attachments: Vec::new(), is_rating: false, instant: false, client_msg_id: None, origin, author: None, external_id: None, ack_to: Vec::new(), patch, outbox });
        self.write(ctx);
    }

    /// Sends the queued messages as one write, unless one is in flight.
    pub(super) fn write(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.queued.is_empty() {
            return;
        }
        let take = self.queued.len().min(MAX_MESSAGES_PER_WRITE);
        let answer = self.instant_answer(take);
        self.in_flight = self.queued.drain(..take).chain(answer).collect();
        self.writing = true;
        let now = Utc::now();
        let mut patch = SessionPatch::default();
        let mut outbox = Vec::new();
        let mut messages = Vec::with_capacity(self.in_flight.len());
        for (i, pending) in self.in_flight.iter().enumerate() {
            let seq = self.committed_seq + 1 + i as Seq;
            patch.merge(pending.patch.clone());
            // A reply out to Messenger/WhatsApp names its message, so the
            // channel's read and delivery statuses can find it again.
            outbox.extend(pending.outbox.iter().cloned().map(|mut row| {
                if row.event_type.ends_with(".send") {
                    row.payload["seq"] = json!(seq);
                }
                row
            }));
            messages.push(MessageRow {
                seq,
                role: pending.role,
                text: pending.text.clone(),
                attachment_ids: pending.attachments.iter().map(|a| a.id).collect(),
                client_msg_id: pending.client_msg_id.clone(),
                external_id: pending.external_id.clone(),
                author_id: pending.author.as_ref().map(|a| a.id),
                latency_ms: match pending.origin {
                    Origin::Agent { latency_ms } => Some(latency_ms),
                    _ => None,
                },
                created_at: now,
            });
        }
        let views: Vec<MessageView> = messages
            .iter()
            .zip(&self.in_flight)
            .map(|(m, p)| MessageView {
                seq: m.seq,
                role: m.role,
                text: m.text.clone(),
                created_at: m.created_at,
                author: p.author.as_ref().map(|a| a.name.clone()),
                attachments: p.attachments.clone(),
            })
            .collect();
        let write = SessionWrite {
            session_id: self.id,
            channel: self.channel,
            create: self.unsaved.clone(),
            messages,
            patch,
            outbox,
            fence: self.fence,
        };
        let persistence = self.hub.persistence.clone();
        async move { persistence.persist(write).await }
            .into_actor(self)
            .map(move |outcome, actor, ctx| actor.written(outcome, views, ctx))
            .spawn(ctx);
    }

    /// A write finished: on success, ack, fan out and move on. A write that
    /// was refused before it reached PostgreSQL failed for sure; any other
    /// failure may have committed, so its outcome is re-read first.
    pub(super) fn written(&mut self, outcome: Result<(), PersistError>, views: Vec<MessageView>, ctx: &mut Context<Self>) {
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
            Err(PersistError::Fenced) => {
                // Nothing of it was written: the lease moved on first.
                self.writing = false;
                self.moved_away(ctx);
            }
            Err(PersistError::Overloaded) => {
                self.writing = false;
                let done = std::mem::take(&mut self.in_flight);
                self.not_stored(done, &PersistError::Overloaded, ctx);
            }
            Err(e) => {
                tracing::warn!(session = %self.id, error = %e, "a conversation write failed; re-reading what was stored");
                metrics::counter!("chathub_write_reconciliations_total").increment(1);
                // Socket and HTTP senders hear at once that it is not stored
                // for sure, and resend with the same id: a resend joins the
                // message being reconciled, and is acked if the re-read finds
                // it stored. A channel's message (webhook, relay) waits for
                // the re-read instead (its request gives up after 10 s), so
                // one that can never be stored is answered as a conflict, not
                // with a retry that cannot succeed.
                let told: Vec<(Vec<AckTo>, Option<String>)> = self
                    .in_flight
                    .iter_mut()
                    .filter(|p| p.external_id.is_none())
                    .map(|p| (std::mem::take(&mut p.ack_to), p.client_msg_id.clone()))
                    .collect();
                for (targets, id) in told {
                    self.acknowledge(targets, id.as_deref(), Err(e.clone()));
                }
                self.reconcile(views, ctx);
            }
        }
    }

    /// The session row is stored: the hub stops offering the conversation
    /// as unsaved.
    pub(super) fn row_stored(&mut self) {
        if self.unsaved.take().is_some() {
            self.hub.session_saved(self.id);
        }
    }

    /// Re-reads what is stored after `committed_seq` (retrying with backoff
    /// while PostgreSQL is away), then settles the in-flight write.
    pub(super) fn reconcile(&mut self, views: Vec<MessageView>, ctx: &mut Context<Self>) {
        let external_ids: Vec<String> = self.in_flight.iter().filter_map(|p| p.external_id.clone()).collect();
        let (db, id, after) = (self.hub.db.clone(), self.id, self.committed_seq);
        let channel = self.channel;
        async move { crate::store::conversations::written_since(&db, id, channel, after, &external_ids).await }
            .into_actor(self)
            .map(move |truth, actor, ctx| match truth {
                Ok(truth) => actor.settle(truth, views, ctx),
                Err(e) => {
                    let delay = actor.next_backoff();
                    tracing::warn!(session = %actor.id, error = %e, "could not re-read a failed write; trying again");
                    ctx.run_later(delay, move |actor, ctx| actor.reconcile(views, ctx));
                }
            })
            .spawn(ctx);
    }

    /// Settles the in-flight write against what PostgreSQL really holds.
    pub(super) fn settle(&mut self, truth: WrittenSince, views: Vec<MessageView>, ctx: &mut Context<Self>) {
        self.writing = false;
        if truth.session_exists {
            self.row_stored();
        }
        // By seq, in order; what is left after matching was written by someone else.
        let mut stored_rows: BTreeMap<Seq, WrittenRow> = truth.rows.into_iter().map(|row| (row.view.seq, row)).collect();
        let done = std::mem::take(&mut self.in_flight);
        let mut changed = false;
        let mut failed = Vec::new();
        for (pending, view) in done.into_iter().zip(views) {
            // The whole write is one transaction: its rows are where it put them.
            let found = stored_rows.get(&view.seq).is_some_and(|row| {
                row.view.role == pending.role
                    && row.client_msg_id == pending.client_msg_id
                    && row.external_id == pending.external_id
                    && row.view.text == pending.text
            });
            if found {
                stored_rows.remove(&view.seq);
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
        for (seq, row) in stored_rows {
            if seq > self.committed_seq {
                self.committed_seq = seq;
                self.remember(row.view);
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
    pub(super) fn stored(&mut self, pending: Pending, view: MessageView) -> bool {
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
        if let (true, Origin::Agent { latency_ms }) = (pending.instant, pending.origin) {
            self.instant_answer_stored(latency_ms, &pending.text);
        }
        let frame = ServerFrame::Message { message: &view }.encode();
        // A visitor's own socket has its ack; their other tabs get the message.
        self.broadcast(&frame, &skip);
        if pending.origin == Origin::Visitor && !pending.is_rating {
            self.needs_answer = true;
        }
        if pending.is_rating {
            self.rating_prompt = Some(super::csat::RatingPrompt::Thank);
        } else if pending.patch.completion.is_some() {
            self.rating_prompt = Some(super::csat::RatingPrompt::Ask);
        }
        let view = Arc::new(view);
        self.hub.supervisor.event(SessionEvent::MessageStored { session_id: self.id, message: view.clone() });
        self.remember(Arc::unwrap_or_clone(view));
        pending.patch.status.is_some() || pending.patch.completion.is_some()
    }

    /// Keeps a committed message in the in-memory transcript (the newest
    /// `TRANSCRIPT_IN_MEMORY`).
    fn remember(&mut self, view: MessageView) {
        self.transcript.push_back(view);
        if self.transcript.len() > TRANSCRIPT_IN_MEMORY {
            self.transcript.pop_front();
        }
    }

    /// The pause before the next retry of a failed write or re-read; each
    /// one doubles it, up to `WRITE_RETRY_MAX` (a commit resets it).
    fn next_backoff(&mut self) -> Duration {
        let delay = self.write_backoff;
        self.write_backoff = (self.write_backoff * 2).min(WRITE_RETRY_MAX);
        delay
    }

    /// After messages were stored: visitors see a changed status, dashboards
    /// the new summary, and the agent may answer.
    pub(super) fn after_stored(&mut self, status_changed: bool, ctx: &mut Context<Self>) {
        if status_changed {
            let frame = self.status_frame();
            self.broadcast(&frame, &[]);
        }
        self.hub.supervisor.event(SessionEvent::SessionChanged { session_id: self.id });
        self.send_due_prompt(ctx);
        self.maybe_run_agent(ctx);
    }

    /// Messages that were not stored: senders resend theirs (they are told
    /// to retry); the actor's own replies are retried in place with backoff.
    pub(super) fn not_stored(&mut self, failed: Vec<Pending>, e: &PersistError, ctx: &mut Context<Self>) {
        let mut kept = Vec::new();
        for pending in failed {
            if matches!(pending.origin, Origin::Visitor | Origin::Staff) {
                self.acknowledge(pending.ack_to, pending.client_msg_id.as_deref(), Err(e.clone()));
            } else if pending.instant {
                // It answered messages that were not stored: their resends
                // are answered again.
            } else {
                kept.push(pending);
            }
        }
        for pending in kept.into_iter().rev() {
            self.queued.push_front(pending);
        }
        if !self.queued.is_empty() {
            let delay = self.next_backoff();
            ctx.run_later(delay, |actor, ctx| actor.write(ctx));
        }
    }

    /// Tells each target whether the message was stored.
    pub(super) fn acknowledge(&self, targets: Vec<AckTo>, client_msg_id: Option<&str>, outcome: Result<Seq, PersistError>) {
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

    pub(super) fn has_pending_reply(&self) -> bool {
        self.queued.iter().chain(self.in_flight.iter()).any(|p| !matches!(p.origin, Origin::Visitor | Origin::Staff))
    }

    /// The one dedupe path for messages that carry their sender's id (a
    /// client's `client_msg_id`, a channel's message id): a message stored
    /// before is acked again with its seq, one still on its way gets this
    /// sender added to its acks, and a full queue is `Overloaded`. `Some`
    /// hands the ack back when the message is new and must be queued.
    fn dedupe(&mut self, key: &MessageKey, ack: AckTo) -> Option<AckTo> {
        self.touch();
        let (stored, client_msg_id) = match key {
            MessageKey::Client(id) => (self.client_ids.get(id), Some(id.as_str())),
            MessageKey::External(id) => (self.external_ids.get(id), None),
        };
        if let Some(&seq) = stored {
            self.acknowledge(vec![ack], client_msg_id, Ok(seq));
            return None;
        }
        if let Some(pending) = self.queued.iter_mut().chain(self.in_flight.iter_mut()).find(|p| key.matches(p)) {
            pending.ack_to.push(ack);
            return None;
        }
        if self.queued.len() >= MAX_QUEUED {
            self.acknowledge(vec![ack], client_msg_id, Err(PersistError::Overloaded));
            return None;
        }
        Some(ack)
    }

    /// Queues a message sent with its sender's id, once (see `dedupe`).
    /// Completion rules run on AI and staff messages, so a completing reply
    /// commits with its `lead.completed` row; staff replies also go out to
    /// Messenger/WhatsApp.
    pub(super) fn enqueue_keyed(&mut self, key: MessageKey, role: MessageRole, origin: Origin, author: Option<crate::domain::Author>, body: MessageBody, ack: AckTo, ctx: &mut Context<Self>) {
        let Some(ack) = self.dedupe(&key, ack) else { return };
        let (text, attachments) = body.into_parts();
        let mut patch = SessionPatch::default();
        let mut outbox = Vec::new();
        if matches!(role, MessageRole::Ai | MessageRole::Agent) {
            self.check_completion(&text, &mut patch, &mut outbox);
        }
        if origin == Origin::Staff && key.is_client() {
            outbox.extend(self.outgoing(&text, &attachments));
            // The replier takes an escalation nobody has taken (SPEC §11).
            patch.assign_if_unassigned = author.as_ref().map(|a| a.id);
        }
        // A Messenger/WhatsApp customer answering the rating question with
        // 1–5 rates the conversation; the agent does not answer that.
        let rating = (origin == Origin::Visitor && self.csat_asked && !self.csat_given).then(|| Csat::from_reply(&text)).flatten();
        let is_rating = rating.is_some();
        if let Some(csat) = rating {
            self.csat_given = true;
            patch.csat = Some(csat);
        }
        // A visitor who writes again in a resolved conversation reopens it.
        if origin == Origin::Visitor && self.status == SessionStatus::Resolved && !is_rating {
            self.status = SessionStatus::Active;
            patch.status = Some(SessionStatus::Active);
        }
        let (client_msg_id, external_id) = match key {
            MessageKey::Client(id) => (Some(id), None),
            MessageKey::External(id) => (None, Some(id)),
        };
        self.queued.push_back(Pending { role, text, attachments, is_rating, instant: false, client_msg_id, origin, author, external_id, ack_to: vec![ack], patch, outbox });
        self.write(ctx);
    }
}

/// The id a sender gave a message: a resend with it is stored once.
pub(super) enum MessageKey {
    /// A visitor's or staff member's `client_msg_id`.
    Client(String),
    /// A channel's message id (Messenger mid, WhatsApp wamid, relay id).
    External(String),
}

impl MessageKey {
    fn matches(&self, pending: &Pending) -> bool {
        match self {
            MessageKey::Client(id) => pending.client_msg_id.as_deref() == Some(id.as_str()),
            MessageKey::External(id) => pending.external_id.as_deref() == Some(id.as_str()),
        }
    }

    fn is_client(&self) -> bool {
        matches!(self, MessageKey::Client(_))
    }
}
