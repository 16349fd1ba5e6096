//! The visitor socket, `GET /ws/chat?site=KEY`: handshake checks, then one
//! task per connection that reads client frames, writes queued server frames,
//! pings, and enforces the limits. The conversation itself lives in the
//! `ChatSession` actor; this module only speaks the protocol.
//!
//! Refused before the upgrade (HTTP, JSON error body): unknown site (404),
//! origin not allowed for the site (403), too many sockets from one IP (429).
//! After the upgrade, see `protocol::close` and `protocol::error_code`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use bytestring::ByteString;
use futures_util::future::OptionFuture;
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::outbound::{self, Outbound};
use super::handoff;
use super::transport::{self, Incoming, Socket};
use crate::protocol::{self, VisitorFrame, close, error_code, error_frame};
use crate::limits::{IpSlot, NewConversations, RateLimit};
use crate::actors::Hub;
use crate::actors::SessionHandle;
use crate::actors::handles::VisitorCallCommand;
use crate::actors::chat_session::AttachError;
use crate::actors::persistence::NewSessionRow;
use crate::domain::{Channel, ClientMsgId, Completion, Csat, Customer, SeenUpTo, Seq, SessionId, SessionStatus};
use crate::store::attachments::Sender;
use crate::store::csat::Rated;
use crate::error::ApiError;
use crate::sites;
use uuid::Uuid;
use crate::state::AppState;

/// Consecutive rate-limited frames after which a flooding socket is closed.
const MAX_RATE_VIOLATIONS: u32 = 100;

#[derive(Debug, Deserialize)]
pub struct ChatQuery {
    site: Option<String>,
    /// `test` for the dashboard's "Test AI" window; `web` otherwise.
    channel: Option<String>,
}

pub async fn visitor_socket(
    req: HttpRequest,
    query: web::Query<ChatQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let site_key = query.site.as_deref().unwrap_or(sites::DEFAULT_SITE);
    let site = state.sites.find(&state.db, site_key).await?.ok_or(ApiError::NotFound("site"))?;
    let origin = req.headers().get("origin").and_then(|o| o.to_str().ok());
    if !site.allows_origin(origin) {
        return Err(ApiError::Forbidden("this origin may not open the chat of this site"));
    }
    let channel = match query.channel.as_deref() {
        None | Some("web") => Channel::Web,
        Some("test") => Channel::Test,
        Some(_) => return Err(ApiError::invalid("invalid_channel", "channel must be web or test")),
    };
    let ip = state.config.trusted_proxies.of_request(&req).ok_or(ApiError::invalid("no_peer", "unknown peer address"))?;
    let slot = state.visitor_ips.acquire(ip).ok_or(ApiError::RateLimited { retry_after_secs: 10 })?;

    let (hub, shutting_down) = (state.hub.clone(), state.shutting_down.clone());
    let new_conversations = state.new_conversations.clone();
    handoff::accept(&req, transport::config(&state.config.limits), move |ws| {
        let socket = Socket::new(ws, &hub.config.limits);
        Connection::new(hub, socket, site.id, channel, slot, new_conversations).run(shutting_down)
    })
}

/// Where a socket is in the protocol.
enum Phase {
    /// Waiting for `hello` (until `WS_HELLO_TIMEOUT_SECS`).
    Hello,
    /// Welcomed into a new conversation nobody has written in yet. Neither
    /// its row nor its actor exists: the actor starts on the visitor's first
    /// message (or typing) and the row is stored with the first message.
    /// Most visitors who open the widget never write, and then cost nothing
    /// but this socket.
    Opened { session_id: SessionId },
    /// Attached to a conversation's actor.
    Chatting { session: SessionHandle },
}

struct Connection {
    hub: Arc<Hub>,
    socket: Socket,
    /// The site the socket was opened for (a token resumes only its own).
    site_id: Uuid,
    channel: Channel,
    outbound: Outbound,
    receiver: outbound::OutboundReceiver,
    phase: Phase,
    rate: RateLimit,
    rate_violations: u32,
    last_heard: Instant,
    /// Held for the life of the socket: the per-IP count (and the client's address).
    slot: IpSlot,
    /// The per-IP allowance of new conversations, charged once, at the
    /// first message of a conversation that is not stored yet.
    new_conversations: Arc<NewConversations>,
    /// This socket's conversation was charged to (or needs no) allowance.
    may_write: bool,
    /// The newest seq this socket reported read: only a higher one is
    /// stored (a frame that moves nothing costs nothing).
    read_reported: Seq,
}

/// What handling a client frame asks of the loop.
enum Flow {
    Continue,
    Close(u16, &'static str),
}

impl Connection {
    fn new(hub: Arc<Hub>, socket: Socket, site_id: Uuid, channel: Channel, slot: IpSlot, new_conversations: Arc<NewConversations>) -> Self {
        let limits = &hub.config.limits;
        let (outbound, receiver) = outbound::channel(limits.send_queue);
        let rate = RateLimit::new(limits.rate_per_sec, limits.rate_burst);
        metrics::gauge!("chathub_visitor_sockets").increment(1.0);
        Self {
            hub,
            socket,
            site_id,
            channel,
            outbound,
            receiver,
            phase: Phase::Hello,
            rate,
            rate_violations: 0,
            read_reported: 0,
            last_heard: Instant::now(),
            slot,
            new_conversations,
            may_write: false,
        }
    }

    /// The socket's task. What it awaits only now and then (handling a
    /// client frame, which may wait on the database; writing a burst; the
    /// close) is boxed: a future holds the state of everything it awaits
    /// inline, and this one lives as long as the socket, idle or not.
    ///
    /// An `async` block rather than an `async fn`: an `async fn` keeps its
    /// arguments and its locals in separate slots, so the connection would
    /// be stored twice in a future that lives as long as the socket.
    fn run(mut self, mut shutting_down: watch::Receiver<bool>) -> impl Future<Output = ()> {
        async move {
            let limits = &self.hub.config.limits;
            let idle_timeout = Duration::from_secs(limits.client_timeout_secs);
            let mut ping = tokio::time::interval(Duration::from_secs(limits.ping_interval_secs.max(1)));
            ping.reset();
            // Dropped (and its memory freed) once the socket said hello.
            let mut hello_timer = Some(Box::pin(tokio::time::sleep(Duration::from_secs(limits.hello_timeout_secs))));
            let close: Option<(u16, &'static str)> = loop {
                if !matches!(self.phase, Phase::Hello) {
                    hello_timer = None;
                }
                tokio::select! {
                    next = self.receiver.next() => {
                        let drained = Box::pin(transport::drain(&mut self.socket, &mut self.receiver, next, |_| false)).await;
                        if let Err(close) = drained {
                            break close;
                        }
                    }
                    incoming = self.socket.recv() => {
                        self.last_heard = Instant::now();
                        if let Err(close) = Box::pin(self.on_incoming(incoming)).await {
                            break close;
                        }
                    }
                    _ = ping.tick() => {
                        if let Err(close) = Box::pin(self.socket.keep_alive(self.last_heard, idle_timeout)).await {
                            break close;
                        }
                    }
                    _ = shutting_down.wait_for(|&down| down) => {
                        break Some((close::GOING_AWAY, "server shutting down; reconnect"));
                    }
                    _ = OptionFuture::from(hello_timer.as_mut()), if hello_timer.is_some() => {
                        break Some((close::HELLO_TIMEOUT, "no hello in time"));
                    }
                }
            };
            match &self.phase {
                Phase::Chatting { session } => session.detach_visitor(self.outbound.id),
                Phase::Opened { session_id } => self.hub.forget_unsaved(*session_id),
                Phase::Hello => {}
            }
            metrics::gauge!("chathub_visitor_sockets").decrement(1.0);
            Box::pin(self.socket.close(close)).await;
        }
    }

    /// Handles one message from the client and writes the replies it
    /// queued. `Err` carries the close to perform (`None`: the peer is gone).
    async fn on_incoming(&mut self, incoming: Incoming) -> Result<(), Option<(u16, &'static str)>> {
        let flow = match incoming {
            Incoming::Text(text) => match self.over_rate(Some(&text)).await {
                Some(flow) => flow,
                None => self.on_text(&text).await,
            },
            // Binary frames count against the rate limit like text ones.
            Incoming::Binary => match self.over_rate(None).await {
                Some(flow) => flow,
                None => self.reply(error_frame(error_code::BINARY_NOT_SUPPORTED, "send JSON text frames", None)).await,
            },
            Incoming::Handled => Flow::Continue,
            Incoming::Close(code, reason) => Flow::Close(code, reason),
            Incoming::Gone => return Err(None),
        };
        self.socket.flush().await.map_err(|_| None)?;
        match flow {
            Flow::Continue => Ok(()),
            Flow::Close(code, reason) => Err(Some((code, reason))),
        }
    }

    /// Queues a direct reply (an error or the welcome) on this socket; the
    /// loop flushes after each client frame.
    async fn reply(&mut self, frame: ByteString) -> Flow {
        let _ = self.socket.send(frame).await;
        Flow::Continue
    }

    /// Applies the per-socket rate limit to one incoming frame: `Some` is
    /// what to do instead of handling it (an error frame, or the close of a
    /// socket that keeps flooding).
    async fn over_rate(&mut self, text: Option<&str>) -> Option<Flow> {
        if self.rate.allow() {
            self.rate_violations = 0;
            return None;
        }
        self.rate_violations += 1;
        if self.rate_violations > MAX_RATE_VIOLATIONS {
            return Some(Flow::Close(close::RATE_LIMITED, "flooding past the rate limit"));
        }
        let client_msg_id = text
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|v| v.get("client_msg_id").and_then(|c| c.as_str()).map(str::to_owned));
        let frame = error_frame(error_code::RATE_LIMITED, "too many frames; slow down and resend", client_msg_id.as_deref());
        Some(self.reply(frame).await)
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        let frame = match protocol::parse_frame::<VisitorFrame>(text, protocol::VISITOR_FRAME_TYPES) {
            Ok(frame) => frame,
            Err((code, message)) => return self.reply(error_frame(code, &message, None)).await,
        };
        match frame {
            VisitorFrame::Hello { token, last_seq, visitor } => self.on_hello(token, last_seq.unwrap_or(0), visitor).await,
            VisitorFrame::Message { client_msg_id, text, attachments } => self.on_message(client_msg_id, text, attachments).await,
            VisitorFrame::Typing { on } => match self.phase {
                Phase::Hello => self.reply(error_frame(error_code::HELLO_REQUIRED, "send hello first", None)).await,
                // Nobody can be shown as typing in a conversation without an actor.
                Phase::Opened { .. } if !on => Flow::Continue,
                _ => match self.actor(None).await {
                    Ok(session) => {
                        session.visitor_typing(on);
                        Flow::Continue
                    }
                    Err(flow) => flow,
                },
            },
            VisitorFrame::Read { seq } => self.on_read(seq).await,
            VisitorFrame::Csat { score, comment } => self.on_csat(score, comment).await,
            VisitorFrame::Call { call_id, action, reason, quality } => {
                let conn = self.outbound.id;
                self.on_call(VisitorCallCommand::Action { conn, call_id, action, reason, quality }).await
            }
            VisitorFrame::Signal { call_id, data } => {
                let conn = self.outbound.id;
                self.on_call(VisitorCallCommand::Signal { conn, call_id, data }).await
            }
        }
    }

    /// A chat message, with its attachments: checked, then handed to the
    /// conversation, which acks it once stored.
    async fn on_message(&mut self, client_msg_id: String, text: String, attachments: Vec<Uuid>) -> Flow {
        let session_id = match &self.phase {
            Phase::Hello => return self.reply(error_frame(error_code::HELLO_REQUIRED, "send hello first", Some(&client_msg_id))).await,
            Phase::Opened { session_id } => *session_id,
            Phase::Chatting { session } => session.id(),
        };
        let max_chars = self.hub.config.limits.max_message_chars;
        let parsed = match ClientMsgId::parse(&client_msg_id) {
            Ok(id) => {
                let to = (session_id.0, Sender::Visitor);
                crate::attachments::message_body(&self.hub.db, &text, &attachments, to, id.as_str(), max_chars)
                    .await
                    .map(|body| (id, body))
                    .map_err(|e| e.code_and_message())
            }
            Err(e) => Err((e.code, e.message)),
        };
        match parsed {
            Ok(_) if !self.may_write() => {
                let message = "too many new conversations from your address; try again later";
                self.reply(error_frame(error_code::RATE_LIMITED, message, Some(&client_msg_id))).await
            }
            Ok((id, body)) => match self.actor(Some(&client_msg_id)).await {
                Ok(session) => {
                    if session.visitor_message(&self.outbound, id, body).await.is_err() {
                        let frame = error_frame(error_code::RETRY, "the conversation is busy; resend", Some(&client_msg_id));
                        return self.reply(frame).await;
                    }
                    Flow::Continue
                }
                Err(flow) => flow,
            },
            Err((code, message)) => {
                let id = (client_msg_id.chars().count() <= 64).then_some(client_msg_id.as_str());
                self.reply(error_frame(code, &message, id)).await
            }
        }
    }

    /// A video-call frame: for the conversation this socket is attached to
    /// (which checks that the socket is a party of the call).
    async fn on_call(&mut self, command: VisitorCallCommand) -> Flow {
        let Phase::Chatting { session } = &self.phase else {
            return self.reply(error_frame(error_code::CALL_REFUSED, "no call in this conversation", None)).await;
        };
        if session.visitor_call(command).is_err() {
            return self.reply(error_frame(error_code::RETRY, "the conversation is busy; send it again", None)).await;
        }
        Flow::Continue
    }

    /// The visitor rates the conversation: stored (once; again within 24 h
    /// replaces it), and the dashboards' summary moves.
    async fn on_csat(&mut self, score: i64, comment: Option<String>) -> Flow {
        let csat = match Csat::parse(score, comment.as_deref()) {
            Ok(csat) => csat,
            Err(e) => return self.reply(error_frame(e.code, &e.message, None)).await,
        };
        let session_id = match &self.phase {
            Phase::Hello => return self.reply(error_frame(error_code::HELLO_REQUIRED, "send hello first", None)).await,
            Phase::Opened { session_id } => *session_id,
            Phase::Chatting { session } => session.id(),
        };
        match crate::store::csat::rate(&self.hub.db, session_id.0, &csat).await {
            Ok(Rated::Stored) => {
                self.hub.session_changed(session_id);
                Flow::Continue
            }
            Ok(Rated::Closed) => self.reply(error_frame(error_code::CSAT_CLOSED, "this conversation was rated more than 24 hours ago", None)).await,
            Ok(Rated::Unknown) => self.reply(error_frame(error_code::CSAT_CLOSED, "there is nothing to rate yet", None)).await,
            Err(e) => {
                tracing::warn!(error = %e, "could not store a rating");
                self.reply(error_frame(error_code::RETRY, "the rating was not stored; send it again", None)).await
            }
        }
    }

    /// The visitor has seen the conversation up to `seq`: stored when it is
    /// further than this socket reported before (one UPDATE per advance),
    /// and watchers hear it.
    async fn on_read(&mut self, seq: i64) -> Flow {
        if matches!(self.phase, Phase::Hello) {
            return self.reply(error_frame(error_code::HELLO_REQUIRED, "send hello first", None)).await;
        }
        if let Err(e) = SeenUpTo::parse(seq, error_code::INVALID_FRAME, "seq") {
            return self.reply(error_frame(e.code, &e.message, None)).await;
        }
        // Nothing is stored yet in a conversation without an actor.
        let Phase::Chatting { session } = &self.phase else { return Flow::Continue };
        if seq <= self.read_reported {
            return Flow::Continue;
        }
        let id = session.id();
        self.read_reported = seq;
        match crate::store::reads::visitor_read(&self.hub.db, id.0, seq).await {
            Ok(true) => self.hub.visitor_read(id, seq),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not store a read position"),
        }
        Flow::Continue
    }

    async fn on_hello(&mut self, token: Option<String>, last_seq: i64, visitor: Option<protocol::VisitorInfo>) -> Flow {
        if !matches!(self.phase, Phase::Hello) {
            return self.reply(error_frame(error_code::ALREADY_WELCOMED, "this socket already said hello", None)).await;
        }
        let last_seq = match SeenUpTo::parse(last_seq, error_code::INVALID_LAST_SEQ, "last_seq") {
            Ok(seen) => seen,
            Err(e) => return self.reply(error_frame(e.code, &e.message, None)).await,
        };
        let customer = match visitor {
            Some(v) => match Customer::parse(v.name.as_deref(), v.email.as_deref(), v.phone.as_deref()) {
                Ok(c) => c,
                Err(e) => return self.reply(error_frame(e.code, &e.message, None)).await,
            },
            None => Customer::default(),
        };
        match token.filter(|t| !t.is_empty()) {
            Some(token) => match self.resume(&token).await {
                Ok((session_id, actor)) => self.attach(session_id, actor, last_seq, Some(&token), None).await,
                Err((code, message)) => self.reply(error_frame(code, &message, None)).await,
            },
            None if last_seq > SeenUpTo::NOTHING => {
                self.reply(error_frame(error_code::INVALID_LAST_SEQ, "a new conversation has no messages yet", None)).await
            }
            None => {
                let (session_id, token) = self.open(customer);
                self.phase = Phase::Opened { session_id };
                let welcome = protocol::ServerFrame::Welcome { session_id, token: &token, messages: &[] }.encode();
                // A conversation just opened is active and in progress.
                let status = protocol::ServerFrame::Status { completion: Completion::InProgress, status: SessionStatus::Active };
                if self.socket.send(welcome).await.is_err() || self.socket.send(status.encode()).await.is_err() {
                    return Flow::Close(1000, "gone");
                }
                Flow::Continue
            }
        }
    }

    /// Whether a message may go to this socket's conversation: always, once
    /// it is stored; before that (this message would create it) only within
    /// the client IP's allowance of new conversations.
    fn may_write(&mut self) -> bool {
        if !self.may_write {
            let session_id = match &self.phase {
                Phase::Opened { session_id } => *session_id,
                Phase::Chatting { session } => session.id(),
                Phase::Hello => return true,
            };
            self.may_write = !self.hub.is_unsaved(session_id) || self.new_conversations.allow(self.slot.ip());
        }
        self.may_write
    }

    /// The conversation's actor, started and attached to on first use after
    /// a new conversation's welcome. `Err` is what to do instead (an error
    /// frame was queued, or the socket must close).
    async fn actor(&mut self, client_msg_id: Option<&str>) -> Result<SessionHandle, Flow> {
        let session_id = match &self.phase {
            Phase::Chatting { session } => return Ok(session.clone()),
            Phase::Opened { session_id } => *session_id,
            Phase::Hello => {
                return Err(self.reply(error_frame(error_code::HELLO_REQUIRED, "send hello first", client_msg_id)).await);
            }
        };
        match self.hub.session(session_id).await {
            Ok(Some(actor)) => match self.attach(session_id, actor.clone(), SeenUpTo::NOTHING, None, client_msg_id).await {
                Flow::Continue if matches!(self.phase, Phase::Chatting { .. }) => Ok(actor),
                Flow::Continue => Err(Flow::Continue),
                flow => Err(flow),
            },
            Ok(None) => Err(Flow::Close(close::SESSION_DELETED, "the conversation was deleted")),
            Err(e) => {
                tracing::warn!(error = %e, "could not load a conversation");
                let frame = error_frame(error_code::RETRY, "the conversation could not be loaded; resend", client_msg_id);
                Err(self.reply(frame).await)
            }
        }
    }

    /// Attaches this socket to the conversation's actor, having seen up to
    /// `last_seq`, and writes what it missed: in a `welcome` when saying
    /// hello (`token`), else as `message` frames. `retry_id` goes on a
    /// `retry` error (the message that was waiting for the attach).
    async fn attach(
        &mut self,
        session_id: SessionId,
        actor: SessionHandle,
        last_seq: SeenUpTo,
        token: Option<&str>,
        retry_id: Option<&str>,
    ) -> Flow {
        let attached = match actor.attach_visitor(self.outbound.clone(), last_seq).await {
            Ok(attached) => attached,
            Err(AttachError::InvalidLastSeq { newest }) => {
                let message = format!("last_seq is past the newest message ({newest})");
                return self.reply(error_frame(error_code::INVALID_LAST_SEQ, &message, None)).await;
            }
            Err(AttachError::Stopped) => {
                let frame = error_frame(error_code::RETRY, "the conversation is restarting; try again", retry_id);
                return self.reply(frame).await;
            }
        };
        self.phase = Phase::Chatting { session: actor };
        let mut messages = Vec::new();
        if let Some((after, up_to)) = attached.gap {
            // Seqs are gap-free, so (after, up_to] is exactly `up_to - after` messages.
            match crate::store::sessions::messages(&self.hub.db, session_id.0, after, up_to - after).await {
                Ok(older) => messages = older,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read older messages for a resume");
                    return Flow::Close(close::GOING_AWAY, "could not load the conversation; reconnect");
                }
            }
        }
        messages.extend(attached.messages);
        let mut frames = match token {
            Some(token) => vec![protocol::ServerFrame::Welcome { session_id, token, messages: &messages }.encode()],
            None => messages.iter().map(|message| protocol::ServerFrame::Message { message }.encode()).collect(),
        };
        frames.push(attached.status);
        if attached.staff_read_seq > 0 {
            frames.push(protocol::ServerFrame::Read { by: crate::domain::MessageRole::Agent, seq: attached.staff_read_seq }.encode());
        }
        if attached.agent_typing {
            frames.push(protocol::ServerFrame::Typing { role: crate::domain::MessageRole::Ai, on: true }.encode());
        }
        for frame in frames {
            if self.socket.send(frame).await.is_err() {
                return Flow::Close(1000, "gone");
            }
        }
        Flow::Continue
    }

    async fn resume(&self, token: &str) -> Result<(SessionId, SessionHandle), (&'static str, String)> {
        let found = self.hub.find_by_visitor_token(token).await.map_err(|e| {
            tracing::warn!(error = %e, "token lookup failed");
            (error_code::RETRY, "the conversation could not be looked up; try again".to_owned())
        })?;
        let invalid = || (error_code::INVALID_TOKEN, "unknown or expired conversation token".to_owned());
        let (session_id, site_id) = found.ok_or_else(invalid)?;
        // A token only resumes a conversation of the site it was issued for.
        if site_id.is_some_and(|s| s != self.site_id) {
            return Err(invalid());
        }
        match self.hub.session(session_id).await {
            Ok(Some(actor)) => Ok((session_id, actor)),
            Ok(None) => Err(invalid()),
            Err(e) => {
                tracing::warn!(error = %e, "could not load a conversation");
                Err((error_code::RETRY, "the conversation could not be loaded; try again".into()))
            }
        }
    }

    /// Opens a new conversation: an id and a token, nothing stored yet.
    fn open(&self, customer: Customer) -> (SessionId, String) {
        let token = crate::auth::random_token(32);
        let row = NewSessionRow {
            channel: self.channel,
            external_id: None,
            site_id: Some(self.site_id),
            visitor_token_hash: Some(crate::auth::sha256(&token)),
            customer,
            metadata: serde_json::json!({}),
            created_at: Utc::now(),
        };
        (self.hub.open_session(row), token)
    }
}
