//! The staff dashboard socket, `GET /ws/dashboard` (staff cookie). The
//! handshake is refused (403) unless the browser's `Origin` is this host, so
//! a page elsewhere cannot ride a signed-in user's cookie.
//!
//! After the upgrade the socket receives every `session` summary as sessions
//! change, and may `watch` a conversation from a `last_seq` (backlog from
//! PostgreSQL, then live frames, without gaps or duplicates), `say` as staff,
//! `takeover`, and signal `typing`. Frames are in `protocol::StaffFrame`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use bytestring::ByteString;
use tokio::sync::watch;

use crate::outbound::{self, Outbound, OutboundReceiver};
use super::handoff;
use super::transport::{self, Incoming, Socket};
use crate::protocol::{self, DashboardFrame, StaffFrame, close, error_code};
use crate::limits::RateLimit;
use crate::actors::Hub;
use crate::actors::handles::StaffCallCommand;
use uuid::Uuid;
use crate::auth::access::{same_origin, session_cookie};
use crate::auth::staff_sessions::{self, StaffUser};
use crate::domain::{ClientMsgId, SeenUpTo, Seq, SessionId};
use crate::domain::listing::{ListQuery, SessionFilter};
use crate::store::attachments::Sender;
use crate::error::ApiError;
use crate::store::StoreError;
use crate::domain::role::HANDLERS;
use crate::state::AppState;

/// How often an open dashboard re-checks that its login is still valid
/// (logout, expiry or a disabled user closes it with 4401 within this time).
const LOGIN_RECHECK: Duration = Duration::from_secs(15);
/// Messages sent per page of a `watch` backlog.
const BACKLOG_PAGE: i64 = 500;

pub async fn dashboard_socket(
    req: HttpRequest,
    user: StaffUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // Cross-site WebSocket hijacking: a socket handshake carries cookies but
    // no CORS, so the origin must be checked here, and must be present.
    if !req.headers().contains_key("origin") || !same_origin(&req) {
        return Err(ApiError::Forbidden("the dashboard socket only accepts this site's own pages"));
    }
    let token = session_cookie(&req).ok_or(ApiError::Unauthenticated)?;
    let (hub, shutting_down) = (state.hub.clone(), state.shutting_down.clone());
    handoff::accept(&req, transport::config(&state.config.limits), move |ws| {
        let limits = &hub.config.limits;
        let (outbound, receiver) = outbound::channel(limits.send_queue);
        hub.supervisor.dashboard_connected(outbound.clone());
        let connection = Dashboard {
            socket: Socket::new(ws, limits),
            rate: RateLimit::new(limits.rate_per_sec, limits.rate_burst),
            hub,
            user,
            token,
            outbound,
            receiver,
            backlog_upto: HashMap::new(),
            read_reported: HashMap::new(),
            last_heard: Instant::now(),
        };
        connection.run(shutting_down)
    })
}

struct Dashboard {
    hub: Arc<Hub>,
    socket: Socket,
    user: StaffUser,
    /// The login cookie, re-checked every `LOGIN_RECHECK`.
    token: String,
    outbound: Outbound,
    receiver: OutboundReceiver,
    /// Per watched conversation, the newest seq its backlog sent: live frames
    /// at or below it are duplicates and are dropped.
    backlog_upto: HashMap<SessionId, Seq>,
    /// Per watched conversation, the newest seq this dashboard reported read
    /// (only a higher one is stored).
    read_reported: HashMap<SessionId, Seq>,
    rate: RateLimit,
    last_heard: Instant,
}

impl Dashboard {
    async fn run(mut self, mut shutting_down: watch::Receiver<bool>) {
        let limits = &self.hub.config.limits;
        let idle_timeout = Duration::from_secs(limits.client_timeout_secs);
        let mut ping = tokio::time::interval(Duration::from_secs(limits.ping_interval_secs.max(1)));
        ping.reset();
        let mut recheck = tokio::time::interval(LOGIN_RECHECK);
        recheck.reset();
        let close: Option<(u16, &'static str)> = loop {
            tokio::select! {
                next = self.receiver.next() => {
                    let backlog_upto = &self.backlog_upto;
                    let duplicate = |key: Option<outbound::DedupeKey>| {
                        key.is_some_and(|(session, seq)| backlog_upto.get(&session).is_some_and(|&upto| seq <= upto))
                    };
                    if let Err(close) = transport::drain(&mut self.socket, &mut self.receiver, next, duplicate).await {
                        break close;
                    }
                }
                incoming = self.socket.recv() => {
                    self.last_heard = Instant::now();
                    match incoming {
                        Incoming::Text(text) => {
                            if self.rate.allow() {
                                self.on_text(&text).await;
                            } else {
                                self.error(None, error_code::RATE_LIMITED, "slow down", None).await;
                            }
                            if self.socket.flush().await.is_err() {
                                break None;
                            }
                        }
                        Incoming::Binary => {
                            // Binary frames count against the rate limit like any other.
                            if self.rate.allow() {
                                self.error(None, error_code::BINARY_NOT_SUPPORTED, "send JSON text frames", None).await;
                            } else {
                                self.error(None, error_code::RATE_LIMITED, "slow down", None).await;
                            }
                            if self.socket.flush().await.is_err() {
                                break None;
                            }
                        }
                        Incoming::Handled => {}
                        Incoming::Close(code, reason) => break Some((code, reason)),
                        Incoming::Gone => break None,
                    }
                }
                _ = ping.tick() => {
                    if let Err(close) = self.socket.keep_alive(self.last_heard, idle_timeout).await {
                        break close;
                    }
                }
                _ = recheck.tick() => {
                    match staff_sessions::lookup(&self.hub.db, &self.token, staff_sessions::Lifetimes::of(&self.hub.config)).await {
                        Ok(Some(_)) => {}
                        Ok(None) => break Some((close::UNAUTHORIZED, "signed out")),
                        // The database being briefly unreachable does not sign anyone out.
                        Err(e) => tracing::warn!(error = %e, "could not re-check a dashboard login"),
                    }
                }
                _ = shutting_down.wait_for(|&down| down) => {
                    break Some((close::GOING_AWAY, "server shutting down; reconnect"));
                }
            }
        };
        self.hub.supervisor.dashboard_gone(self.outbound.id);
        self.hub.stats.unsubscribe(self.outbound.id);
        self.socket.close(close).await;
    }

    /// Queues a reply; the loop flushes after each client frame.
    async fn reply(&mut self, frame: ByteString) {
        let _ = self.socket.send(frame).await;
    }

    async fn error(&mut self, session_id: Option<SessionId>, code: &str, message: &str, client_msg_id: Option<&str>) {
        self.reply(StaffFrame::Error { session_id, code, message, client_msg_id }.encode()).await;
    }

    /// A video-call command for a conversation running on this node.
    async fn call(&mut self, session_id: SessionId, command: StaffCallCommand) {
        let session = match &command {
            StaffCallCommand::Start { .. } => self.hub.session(session_id).await.ok().flatten(),
            _ => self.hub.running(session_id).await,
        };
        let Some(session) = session else {
            return self.error(Some(session_id), error_code::CALL_REFUSED, "no such conversation running", None).await;
        };
        if session.staff_call(command).is_err() {
            let message = "the call cannot run from here (the conversation is busy, or runs on another node)";
            self.error(Some(session_id), error_code::CALL_REFUSED, message, None).await;
        }
    }

    fn may_handle(&self) -> bool {
        HANDLERS.contains(&self.user.role)
    }

    async fn on_text(&mut self, text: &str) {
        let frame = match protocol::parse_frame::<DashboardFrame>(text, protocol::DASHBOARD_FRAME_TYPES) {
            Ok(frame) => frame,
            Err((code, message)) => return self.error(None, code, &message, None).await,
        };
        match frame {
            DashboardFrame::Watch { session_id, last_seq } => self.watch(session_id, last_seq).await,
            DashboardFrame::Unwatch { session_id } => {
                self.backlog_upto.remove(&session_id);
                self.read_reported.remove(&session_id);
                self.hub.supervisor.unwatch(self.outbound.id, session_id);
            }
            DashboardFrame::Say { session_id, client_msg_id, text, attachments } => {
                if !self.may_handle() {
                    return self.error(Some(session_id), error_code::FORBIDDEN, "your role may not reply", Some(&client_msg_id)).await;
                }
                let id = match ClientMsgId::parse(&client_msg_id) {
                    Ok(id) => id,
                    Err(e) => return self.error(Some(session_id), e.code, &e.message, None).await,
                };
                let max_chars = self.hub.config.limits.max_message_chars;
                let to = (session_id.0, Sender::Staff);
                let body = match crate::attachments::message_body(&self.hub.db, &text, &attachments, to, id.as_str(), max_chars).await {
                    Ok(body) => body,
                    Err(e) => {
                        let (code, message) = e.code_and_message();
                        return self.error(Some(session_id), code, &message, Some(&client_msg_id)).await;
                    }
                };
                match self.hub.session(session_id).await {
                    Ok(Some(session)) => {
                        if session.staff_say(self.user.author(), id, body, self.outbound.clone()).is_err() {
                            let message = "the conversation is busy; resend";
                            self.error(Some(session_id), error_code::RETRY, message, Some(&client_msg_id)).await;
                        }
                    }
                    Ok(None) => self.error(Some(session_id), error_code::UNKNOWN_SESSION, "no such session", Some(&client_msg_id)).await,
                    Err(_) => self.error(Some(session_id), error_code::RETRY, "the session could not be loaded; resend", Some(&client_msg_id)).await,
                }
            }
            DashboardFrame::Takeover { session_id, on } => {
                if !self.may_handle() {
                    return self.error(Some(session_id), error_code::FORBIDDEN, "your role may not take over", None).await;
                }
                match self.hub.session(session_id).await {
                    Ok(Some(session)) => match session.takeover(on).await {
                        Ok(handler) => self.reply(StaffFrame::Takeover { session_id, handler }.encode()).await,
                        Err(_) => self.error(Some(session_id), error_code::RETRY, "try again", None).await,
                    },
                    Ok(None) => self.error(Some(session_id), error_code::UNKNOWN_SESSION, "no such session", None).await,
                    Err(_) => self.error(Some(session_id), error_code::RETRY, "the session could not be loaded", None).await,
                }
            }
            DashboardFrame::Read { session_id, seq } => {
                let seen = match SeenUpTo::parse(seq, error_code::INVALID_FRAME, "seq") {
                    Ok(seen) => seen.seq(),
                    Err(e) => return self.error(Some(session_id), e.code, &e.message, None).await,
                };
                // Only for a conversation on screen (watched), and only forward.
                if !self.backlog_upto.contains_key(&session_id) || self.read_reported.get(&session_id).is_some_and(|&r| seen <= r) {
                    return;
                }
                self.read_reported.insert(session_id, seen);
                match crate::store::reads::staff_read(&self.hub.db, session_id.0, seen, &self.user.display_name).await {
                    Ok(true) => self.hub.staff_read(session_id, seen),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "could not store a read position"),
                }
            }
            DashboardFrame::Call { session_id, action, call_id, quality } => {
                if !self.may_handle() {
                    return self.error(Some(session_id), error_code::FORBIDDEN, "your role may not call visitors", None).await;
                }
                let command = match (action.as_str(), call_id) {
                    ("start", None) => StaffCallCommand::Start { call_id: Uuid::new_v4(), staff: self.outbound.clone(), author: self.user.author() },
                    ("hangup", Some(call_id)) => StaffCallCommand::Hangup { from: self.outbound.clone(), call_id, quality },
                    _ => return self.error(Some(session_id), error_code::INVALID_FRAME, "action must be start, or hangup with a call_id", None).await,
                };
                self.call(session_id, command).await;
            }
            DashboardFrame::Signal { session_id, call_id, data } => {
                let command = StaffCallCommand::Signal { from: self.outbound.clone(), call_id, data };
                self.call(session_id, command).await;
            }
            DashboardFrame::Typing { session_id, on } => {
                // Best effort: typing in a conversation that is not running
                // (here or on another node) is not shown.
                if self.may_handle() {
                    if let Some(session) = self.hub.running(session_id).await {
                        session.staff_typing(on);
                    }
                }
            }
            DashboardFrame::Stats { filters } => self.subscribe_stats(filters).await,
        }
    }

    /// From now on, the stats of `filters` are pushed as they change.
    async fn subscribe_stats(&mut self, filters: serde_json::Map<String, serde_json::Value>) {
        let filters = serde_json::Value::Object(filters);
        let parsed = serde_json::from_value::<ListQuery>(filters.clone())
            .map_err(|_| ("invalid_filter", "filters are the stats query's parameters, as strings".to_owned()))
            .and_then(|query| SessionFilter::for_stats(query, self.hub.config.timezone).map_err(|e| (e.code, e.message)));
        match parsed {
            Ok(filter) => self.hub.stats.subscribe(self.outbound.clone(), filters, filter),
            Err((code, message)) => self.error(None, code, &message, None).await,
        }
    }

    /// Registers the watch first, then sends the backlog: anything stored
    /// after the registration arrives live, anything before is in the
    /// backlog, and `backlog_upto` drops the overlap.
    async fn watch(&mut self, session_id: SessionId, last_seq: i64) {
        let seen = match SeenUpTo::parse(last_seq, error_code::INVALID_LAST_SEQ, "last_seq") {
            Ok(seen) => seen,
            Err(e) => return self.error(Some(session_id), e.code, &e.message, None).await,
        };
        let last_seq = seen.seq();
        if self.hub.supervisor.watch(self.outbound.id, session_id).await.is_err() {
            return self.error(Some(session_id), error_code::RETRY, "try again", None).await;
        }
        // A live conversation answers from memory: no database round trip.
        if let Some(session) = self.hub.live(session_id) {
            if let Some(backlog) = session.transcript_after(seen).await {
                let mut upto = last_seq;
                for message in &backlog {
                    self.reply(StaffFrame::Message { session_id, message }.encode()).await;
                    upto = message.seq;
                }
                self.backlog_upto.insert(session_id, upto);
                return;
            }
        }
        // Opened by a visitor who has not written yet: nothing to send back,
        // and the watch sees the first message when it is stored.
        if self.hub.is_unsaved(session_id) {
            self.backlog_upto.insert(session_id, last_seq);
            return;
        }
        let exists = crate::store::sessions::summary(&self.hub.db, session_id.0, self.hub.config.inactive_after_hours).await;
        match exists {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                self.hub.supervisor.unwatch(self.outbound.id, session_id);
                return self.error(Some(session_id), error_code::UNKNOWN_SESSION, "no such session", None).await;
            }
            Err(_) => return self.error(Some(session_id), error_code::RETRY, "could not load the session", None).await,
        }
        let mut after = last_seq;
        loop {
            let page = match crate::store::sessions::messages(&self.hub.db, session_id.0, after, BACKLOG_PAGE).await {
                Ok(page) => page,
                Err(_) => return self.error(Some(session_id), error_code::RETRY, "could not load the messages", None).await,
            };
            for message in &page {
                self.reply(StaffFrame::Message { session_id, message }.encode()).await;
                after = message.seq;
            }
            if (page.len() as i64) < BACKLOG_PAGE {
                break;
            }
        }
        self.backlog_upto.insert(session_id, after);
    }
}
