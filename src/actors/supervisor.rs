//! The supervisor actor: keeps the connected staff dashboards and which
//! conversations each one watches, and fans conversation events out to them.
//!
//! Inputs: `DashboardConnected`/`DashboardGone`, `Watch`/`Unwatch`, and
//! `SessionEvent`s from the conversation actors and the API.
//!
//! - Every dashboard gets a `session` frame (the list's summary) whenever a
//!   session is created or changes. Changes are coalesced: dirty sessions are
//!   collected and their summaries loaded in one query every
//!   `COALESCE_INTERVAL`, and a session's summary goes out at most once per
//!   `SUMMARY_GAP`: the first change of a quiet session shows within 100 ms,
//!   a busy one updates once a second (its messages still stream live to its
//!   watchers). A summary is ~1 KB to every dashboard, so this bounds the
//!   list's traffic by the number of sessions, not the number of messages.
//! - Watchers of a conversation get its `message`, `email`, `read` and `typing` frames. A
//!   `typing on` is held for `TYPING_HOLD`; an `off` within that time
//!   cancels both (an agent that answers at once never flickers, and 100
//!   dashboards are spared two frames per reply).
//! - Each frame is serialised once and the bytes shared by every recipient.
//!   Recipients are bounded queues (`ws::outbound`): a dashboard that falls
//!   behind is closed (4008) and never slows a chat or another dashboard.
//! - The mailbox is bounded (`handles::SUPERVISOR_MAILBOX`); if it ever
//!   overflows, every dashboard is closed (4008) and reloads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use uuid::Uuid;

use crate::domain::{MessageRole, Seq, SessionId};
use crate::postgres::Db;
use crate::outbound::{ConnId, Outbound};
use crate::protocol::{EmailView, MessageView, StaffFrame};

/// How often changed sessions are re-read and broadcast.
const COALESCE_INTERVAL: Duration = Duration::from_millis(100);
/// Least time between two summaries of one session.
const SUMMARY_GAP: Duration = Duration::from_secs(1);
/// How long a `typing on` waits for its `off` before it is sent.
const TYPING_HOLD: Duration = Duration::from_millis(50);

/// Something happened in a conversation.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum SessionEvent {
    MessageStored { session_id: SessionId, message: Arc<MessageView> },
    /// An email to the session's lead was queued or its tracking moved.
    EmailChanged { session_id: SessionId, email: Arc<EmailView> },
    /// The visitor's read position moved (stored).
    VisitorRead { session_id: SessionId, seq: Seq },
    /// Messenger/WhatsApp reported our reply `seq` delivered, read or failed (stored).
    ChannelStatus { session_id: SessionId, seq: Seq, status: String },
    SessionChanged { session_id: SessionId },
    SessionDeleted { session_id: SessionId },
    Typing { session_id: SessionId, role: MessageRole, on: bool },
}

/// A dashboard socket opened.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DashboardConnected(pub Outbound);

/// A dashboard socket closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DashboardGone(pub ConnId);

/// A frame for every dashboard of this node (the AI-health card and alerts).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ToAllDashboards(pub ByteString);

/// Start streaming a conversation's messages to a dashboard. Frames carry a
/// dedupe key so the socket can drop live frames its backlog already covered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch {
    pub conn: ConnId,
    pub session_id: SessionId,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub conn: ConnId,
    pub session_id: SessionId,
}

pub struct Supervisor {
    db: Db,
    inactive_after_hours: u32,
    dashboards: HashMap<ConnId, Outbound>,
    /// Conversation → dashboards watching it.
    watchers: HashMap<SessionId, HashSet<ConnId>>,
    /// Sessions changed since their last summary went out.
    dirty: HashSet<Uuid>,
    /// When each recently broadcast session's summary went out (pruned
    /// after `SUMMARY_GAP`, so it holds only sessions active in the last second).
    sent_at: HashMap<Uuid, Instant>,
    /// `typing on` frames held for `TYPING_HOLD`, by session and role, with
    /// the hold's number (a later `on` starts a new hold).
    held_typing: HashMap<(SessionId, MessageRole), u64>,
    holds: u64,
    /// A summary load is running (at most one at a time).
    loading: bool,
    /// Set by `SupervisorHandle` when an event could not be queued: every
    /// dashboard is then closed (4008) to reload, rather than left with a hole.
    fell_behind: Arc<AtomicBool>,
    /// Mailbox capacity (`handles::SUPERVISOR_MAILBOX`; smaller in tests).
    mailbox: usize,
}

impl Supervisor {
    pub fn new(db: Db, inactive_after_hours: u32) -> Self {
        Self {
            db,
            inactive_after_hours,
            dashboards: HashMap::new(),
            watchers: HashMap::new(),
            dirty: HashSet::new(),
            sent_at: HashMap::new(),
            held_typing: HashMap::new(),
            holds: 0,
            loading: false,
            fell_behind: Arc::default(),
            mailbox: super::handles::SUPERVISOR_MAILBOX,
        }
    }

    /// A mailbox of `capacity` messages instead of the default.
    #[cfg(test)]
    pub(crate) fn with_mailbox(mut self, capacity: usize) -> Self {
        self.mailbox = capacity;
        self
    }

    /// Shares the flag its handle raises when the mailbox overflows.
    pub(crate) fn watching_for_overflow(mut self, fell_behind: Arc<AtomicBool>) -> Self {
        self.fell_behind = fell_behind;
        self
    }

    /// Events were lost: every dashboard is closed as a slow consumer and
    /// resumes from PostgreSQL (summaries and transcripts).
    fn close_all_if_behind(&mut self) {
        if !self.fell_behind.swap(false, Ordering::SeqCst) {
            return;
        }
        tracing::warn!(dashboards = self.dashboards.len(), "the supervisor fell behind; closing dashboards so they reload");
        for dashboard in self.dashboards.values() {
            dashboard.close(crate::protocol::close::SLOW_CONSUMER, "the server fell behind; reconnect");
        }
        self.dashboards.clear();
        self.watchers.clear();
        self.dirty.clear();
        self.held_typing.clear();
        metrics::gauge!("chathub_dashboard_sockets").set(0.0);
    }

    fn to_all(&mut self, frame: &ByteString) {
        for dashboard in self.dashboards.values() {
            dashboard.send(frame.clone());
        }
        metrics::counter!("chathub_dashboard_deliveries_total").increment(self.dashboards.len() as u64);
    }

    fn to_watchers(&mut self, session_id: SessionId, frame: &ByteString, seq: Option<Seq>) {
        let Some(watching) = self.watchers.get(&session_id) else { return };
        for conn in watching {
            if let Some(dashboard) = self.dashboards.get(conn) {
                match seq {
                    Some(seq) => dashboard.send_keyed(frame.clone(), (session_id, seq)),
                    None => dashboard.send(frame.clone()),
                };
            }
        }
        metrics::counter!("chathub_dashboard_deliveries_total").increment(watching.len() as u64);
    }

    fn send_typing(&mut self, session_id: SessionId, role: MessageRole, on: bool) {
        let frame = StaffFrame::Typing { session_id, role, on }.encode();
        self.to_watchers(session_id, &frame, None);
    }

    fn broadcast_dirty(&mut self, ctx: &mut Context<Self>) {
        if self.loading || self.dirty.is_empty() {
            return;
        }
        if self.dashboards.is_empty() {
            self.dirty.clear();
            return;
        }
        let now = Instant::now();
        self.sent_at.retain(|_, at| now.duration_since(*at) < SUMMARY_GAP);
        let ids: Vec<Uuid> = self.dirty.iter().copied().filter(|id| !self.sent_at.contains_key(id)).collect();
        if ids.is_empty() {
            return;
        }
        for id in &ids {
            self.dirty.remove(id);
            self.sent_at.insert(*id, now);
        }
        self.loading = true;
        let db = self.db.clone();
        let hours = self.inactive_after_hours;
        async move { crate::store::sessions::summaries(&db, &ids, hours).await }
            .into_actor(self)
            .map(|loaded, actor, _| {
                actor.loading = false;
                match loaded {
                    Ok(summaries) => {
                        for summary in &summaries {
                            let frame = crate::protocol::session_frame(summary);
                            actor.to_all(&frame);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not load session summaries for dashboards"),
                }
            })
            .spawn(ctx);
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
        ctx.run_interval(COALESCE_INTERVAL, |actor, ctx| {
            actor.close_all_if_behind();
            actor.broadcast_dirty(ctx);
        });
    }
}

impl Handler<SessionEvent> for Supervisor {
    type Result = ();

    fn handle(&mut self, event: SessionEvent, ctx: &mut Context<Self>) {
        match event {
            SessionEvent::MessageStored { session_id, message } => {
                let frame = StaffFrame::Message { session_id, message: &message }.encode();
                self.to_watchers(session_id, &frame, Some(message.seq));
            }
            SessionEvent::EmailChanged { session_id, email } => {
                let frame = StaffFrame::Email { session_id, email: &email }.encode();
                self.to_watchers(session_id, &frame, None);
            }
            SessionEvent::VisitorRead { session_id, seq } => {
                let frame = StaffFrame::Read { session_id, by: MessageRole::Visitor, seq }.encode();
                self.to_watchers(session_id, &frame, None);
                self.dirty.insert(session_id.0);
            }
            SessionEvent::ChannelStatus { session_id, seq, status } => {
                let frame = StaffFrame::Delivery { session_id, seq, status: &status }.encode();
                self.to_watchers(session_id, &frame, None);
            }
            SessionEvent::SessionChanged { session_id } => {
                self.dirty.insert(session_id.0);
            }
            SessionEvent::SessionDeleted { session_id } => {
                self.dirty.remove(&session_id.0);
                self.watchers.remove(&session_id);
                let frame = StaffFrame::SessionDeleted { session_id }.encode();
                self.to_all(&frame);
            }
            SessionEvent::Typing { session_id, role, on: true } => {
                self.holds += 1;
                let hold = self.holds;
                self.held_typing.insert((session_id, role), hold);
                ctx.run_later(TYPING_HOLD, move |actor, _| {
                    if actor.held_typing.get(&(session_id, role)) == Some(&hold) {
                        actor.held_typing.remove(&(session_id, role));
                        actor.send_typing(session_id, role, true);
                    }
                });
            }
            SessionEvent::Typing { session_id, role, on: false } => {
                // Still held: the `on` never went out, so neither does the `off`.
                if self.held_typing.remove(&(session_id, role)).is_none() {
                    self.send_typing(session_id, role, false);
                }
            }
        }
    }
}

impl Handler<DashboardConnected> for Supervisor {
    type Result = ();

    fn handle(&mut self, DashboardConnected(outbound): DashboardConnected, _: &mut Context<Self>) {
        self.dashboards.insert(outbound.id, outbound);
        metrics::gauge!("chathub_dashboard_sockets").set(self.dashboards.len() as f64);
    }
}

impl Handler<ToAllDashboards> for Supervisor {
    type Result = ();

    fn handle(&mut self, ToAllDashboards(frame): ToAllDashboards, _: &mut Context<Self>) {
        self.to_all(&frame);
    }
}

impl Handler<DashboardGone> for Supervisor {
    type Result = ();

    fn handle(&mut self, DashboardGone(conn): DashboardGone, _: &mut Context<Self>) {
        self.dashboards.remove(&conn);
        self.watchers.retain(|_, watching| {
            watching.remove(&conn);
            !watching.is_empty()
        });
        metrics::gauge!("chathub_dashboard_sockets").set(self.dashboards.len() as f64);
    }
}

impl Handler<Watch> for Supervisor {
    type Result = ();

    fn handle(&mut self, watch: Watch, _: &mut Context<Self>) {
        if self.dashboards.contains_key(&watch.conn) {
            self.watchers.entry(watch.session_id).or_default().insert(watch.conn);
        }
    }
}

impl Handler<Unwatch> for Supervisor {
    type Result = ();

    fn handle(&mut self, unwatch: Unwatch, _: &mut Context<Self>) {
        if let Some(watching) = self.watchers.get_mut(&unwatch.session_id) {
            watching.remove(&unwatch.conn);
            if watching.is_empty() {
                self.watchers.remove(&unwatch.session_id);
            }
        }
    }
}
