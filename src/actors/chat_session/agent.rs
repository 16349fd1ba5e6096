//! The AI's turn: when a stored visitor message awaits an answer, the agent
//! is called off the actor's path (with a timeout), its partial text is shown
//! as it streams, and its answer (or the fallback) is queued as a reply.

use super::*;
use crate::ai_health::Signal;

/// Partial-answer updates buffered from a streaming agent (extra ones are skipped).
const PARTIALS_BUFFER: usize = 8;
/// What the visitor reads when the agent fails.
pub const FALLBACK_TEXT: &str =
    "Sorry, I'm having trouble answering right now. A member of our team will follow up with you shortly.";

impl ChatSession {
    /// Starts the agent when a stored visitor message awaits an answer, the
    /// AI is in charge, and no answer is already on its way.
    pub(super) fn maybe_run_agent(&mut self, ctx: &mut Context<Self>) {
        if !self.needs_answer || self.relay || self.agent_running || self.handler != SessionHandler::Ai || self.has_pending_reply() {
            return;
        }
        let Some(last_text) = self.transcript.back().map(|m| text_for_agent(&m.text, &m.attachments)) else { return };
        self.needs_answer = false;
        self.agent_running = true;
        self.agent_runs += 1;
        self.set_typing(MessageRole::Ai, true);
        // The agent call has a timeout of its own; a typing indicator still
        // on after it (and a little more) is stuck.
        let run = self.agent_runs;
        let stuck_after = Duration::from_secs(self.hub.config.limits.agent_timeout_secs) + STUCK_TYPING_GRACE;
        ctx.run_later(stuck_after, move |actor, _| {
            if actor.agent_running && actor.agent_runs == run {
                actor.hub.ai_health.record(Signal::StuckTyping);
            }
        });
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
        let history = self.history_with(Vec::new());
        let request = AgentRequest { partials: Some(partials_tx), ..self.agent_request(last_text, history) };
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

    pub(super) fn agent_answered(&mut self, outcome: Result<AgentReply, AgentError>, took: Duration, ctx: &mut Context<Self>) {
        self.agent_running = false;
        self.set_typing(MessageRole::Ai, false);
        let latency_ms = took.as_millis().min(i32::MAX as u128) as i32;
        metrics::histogram!("chathub_agent_seconds").record(took.as_secs_f64());
        match outcome {
            // Staff took over while the agent was thinking: their word wins.
            Ok(_) if self.handler == SessionHandler::Human => {}
            Ok(reply) => {
                self.hub.ai_health.record(Signal::Reply { latency_ms: took.as_millis() as u64 });
                self.count_repeats(&reply.text);
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
                let failure = if matches!(e, AgentError::Timeout(_)) { Signal::Timeout } else { Signal::Error };
                self.hub.ai_health.record(failure);
                self.hub.ai_health.record(Signal::Fallback);
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
}

impl ChatSession {
    /// What the agent is asked: `message` with the history ending in it.
    fn agent_request(&self, message: String, history: Vec<HistoryItem>) -> AgentRequest {
        AgentRequest { session_id: self.id, channel: self.channel, message, history, customer: self.customer.clone(), partials: None }
    }

    /// The newest `HISTORY_LEN` messages: the stored transcript, then `newer`.
    fn history_with(&self, newer: Vec<HistoryItem>) -> Vec<HistoryItem> {
        let from_transcript = HISTORY_LEN.saturating_sub(newer.len());
        let stored = self.transcript.iter().skip(self.transcript.len().saturating_sub(from_transcript));
        let mut all: Vec<HistoryItem> =
            stored.map(|m| HistoryItem { role: m.role, text: text_for_agent(&m.text, &m.attachments) }).chain(newer).collect();
        all.drain(..all.len().saturating_sub(HISTORY_LEN));
        all
    }

    /// An answer written in the same transaction as the visitor messages it
    /// answers (the first `take` queued), from an agent that answers at once
    /// without leaving the process (the demo agent): one commit per exchange
    /// instead of two. Only a plain reply qualifies: one that learns contact
    /// details, escalates, completes the lead or goes out to a channel takes
    /// the usual path after the commit, so nothing the actor changes for it
    /// can outlive a write that failed. The visitor still sees the AI's
    /// typing before the reply (`stored`); dashboards hold typing that short
    /// anyway.
    pub(super) fn instant_answer(&self, take: usize) -> Option<Pending> {
        let batch = self.queued.range(..take);
        let answerable = take < MAX_MESSAGES_PER_WRITE
            && !self.relay
            && !self.agent_running
            && self.handler == SessionHandler::Ai
            && self.completed_at.is_none()
            && !self.has_pending_reply()
            && batch.clone().all(|p| p.origin == Origin::Visitor && !p.is_rating && p.patch.is_empty());
        if !answerable {
            return None;
        }
        let newer: Vec<HistoryItem> =
            batch.map(|p| HistoryItem { role: p.role, text: text_for_agent(&p.text, &p.attachments) }).collect();
        let message = newer.last()?.text.clone();
        let started = Instant::now();
        let reply = self.hub.agent.answer_now(&self.agent_request(message, self.history_with(newer)))?;
        let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
        let plain = reply.customer.is_none() && !reply.escalate && self.outgoing(&reply.text, &[]).is_none();
        (plain && self.hub.rules.current().first_match(&reply.text).is_none()).then(|| Pending {
            role: MessageRole::Ai,
            text: reply.text,
            attachments: Vec::new(),
            is_rating: false,
            client_msg_id: None,
            origin: Origin::Agent { latency_ms },
            instant: true,
            author: None,
            external_id: None,
            ack_to: Vec::new(),
            patch: SessionPatch::default(),
            outbox: Vec::new(),
        })
    }

    /// An instant answer is stored: the visitor sees the AI's typing come
    /// and go before it, and the AI's health counts it like any reply.
    pub(super) fn instant_answer_stored(&mut self, latency_ms: i32, text: &str) {
        for on in [true, false] {
            let frame = ServerFrame::Typing { role: MessageRole::Ai, on }.encode();
            self.broadcast(&frame, &[]);
        }
        self.needs_answer = false;
        metrics::histogram!("chathub_agent_seconds").record(f64::from(latency_ms) / 1000.0);
        self.hub.ai_health.record(Signal::Reply { latency_ms: latency_ms as u64 });
        self.count_repeats(text);
    }
}

/// Identical AI answers in a row that count as a loop (SPEC §16).
const LOOP_REPEATS: u32 = 3;
/// Past the agent's timeout, how long a typing indicator may stay on.
const STUCK_TYPING_GRACE: Duration = Duration::from_secs(2);

impl ChatSession {
    /// Counts the AI saying the same again; the third time in a row is one
    /// loop (a fourth is the same loop, until the text changes).
    fn count_repeats(&mut self, text: &str) {
        let same = self.last_ai_text.as_deref().is_some_and(|last| last.trim() == text.trim());
        self.ai_repeats = if same { self.ai_repeats + 1 } else { 1 };
        self.last_ai_text = Some(text.to_owned());
        if self.ai_repeats == LOOP_REPEATS {
            self.hub.ai_health.record(Signal::Loop);
        }
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

/// A message as the agent reads it: its text, then a line naming each file
/// sent with it (agents take text; the file itself stays in the store).
fn text_for_agent(text: &str, attachments: &[Attachment]) -> String {
    let mut text = text.to_owned();
    for file in attachments {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("[attachment: {} ({})]", file.name, file.content_type));
    }
    text
}
