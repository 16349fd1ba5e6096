//! Typed handles: the only way into the actors from outside `actors/`.
//! Nothing else names an actix `Addr`, so the transports depend on what a
//! conversation, the supervisor, the persistence actor and the notifier
//! *do*, not on how they run. A conversation running on another node,
//! reached over a message bus, changes what is behind `SessionHandle`, not
//! its callers.
//!
//! Every send a remote peer can drive is bounded: it is a `try_send` into a
//! mailbox of known capacity, and each method says what happens when that
//! mailbox is full. Request/response calls (`send(...).await`) wait for
//! room instead, which bounds them by their callers. The few unbounded
//! `do_send`s left carry one message per socket lifetime or per staff
//! action, and say so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::prelude::*;
use tokio::sync::oneshot;

pub use super::chat_session::call::{StaffCallCommand, VisitorCallCommand};
use super::chat_session::call::{StaffCall, VisitorCall};
use super::chat_session::{
    AttachError, AttachVisitor, Attached, ChatSession, Deleted, DetachVisitor, ExternalMessage, LeaseLost, StaffSay,
    StaffRead, StaffTyping, StatusChanged, Takeover, TranscriptAfter, VisitorMessage, VisitorTyping,
};
use super::cluster::{Cluster, RemoteSession, wire};
use super::notifier::{Notifier, Wake};
use crate::attachments::AttachmentStore;
use crate::config::Config;
use crate::postgres::Db;
use super::persistence::{Drain, Persist, PersistError, Persistence, SessionWrite};
use super::supervisor::{DashboardConnected, DashboardGone, SessionEvent, Supervisor, Unwatch, Watch};
use crate::domain::{Author, ClientMsgId, MessageBody, Handler as SessionHandler, MessageRole, SeenUpTo, Seq, SessionId, SessionStatus};
use crate::outbound::{ConnId, Outbound};
use crate::protocol::MessageView;

/// Messages a conversation's mailbox holds. Visitors are rate limited per
/// socket, so this is only reached when a conversation cannot keep up with
/// all of its sockets at once; the senders are then told to retry.
pub(crate) const SESSION_MAILBOX: usize = 256;
/// Events the supervisor's mailbox holds. Past it, events are not queued:
/// typing indicators are dropped, and anything else marks the supervisor as
/// fallen behind, which closes every dashboard (4008) so each reloads from
/// PostgreSQL instead of showing a transcript with a hole in it.
pub(crate) const SUPERVISOR_MAILBOX: usize = 65_536;

/// How long a webhook or relay request waits for its message to be stored.
const EXTERNAL_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The conversation is too busy to take this message now (its mailbox is
/// full) or has stopped; the sender may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the conversation is busy or restarting; try again")]
pub struct Busy;

/// One live conversation: an actor here, or one another node runs
/// (`cluster::RemoteSession`), reached over the bus. Callers cannot tell.
#[derive(Clone)]
pub struct SessionHandle {
    id: SessionId,
    at: Where,
}

#[derive(Clone)]
enum Where {
    Here(Addr<ChatSession>),
    There(RemoteSession),
}

impl SessionHandle {
    pub(crate) fn new(id: SessionId, addr: Addr<ChatSession>) -> Self {
        Self { id, at: Where::Here(addr) }
    }

    pub(crate) fn remote(remote: RemoteSession) -> Self {
        Self { id: remote.id(), at: Where::There(remote) }
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Joins a visitor socket that has seen up to `last_seq`: the backlog
    /// and the live stream, with nothing missed or sent twice in between.
    pub async fn attach_visitor(&self, outbound: Outbound, last_seq: SeenUpTo) -> Result<Attached, AttachError> {
        match &self.at {
            Where::Here(addr) => addr.send(AttachVisitor { outbound, last_seq }).await.unwrap_or(Err(AttachError::Stopped)),
            Where::There(remote) => remote.attach_visitor(outbound, last_seq).await,
        }
    }

    /// A visitor socket closed. One per socket, so never more of these than
    /// sockets: sent even when the mailbox is full.
    pub fn detach_visitor(&self, conn: ConnId) {
        match &self.at {
            Where::Here(addr) => addr.do_send(DetachVisitor(conn)),
            Where::There(remote) => remote.detach_visitor(conn),
        }
    }

    /// A visitor's message; its ack (or `retry`) goes to `outbound`. `Busy`:
    /// not taken, the visitor should resend. Resolves once the conversation
    /// has taken it (at once here; after the owner's answer elsewhere), so
    /// a visitor's messages keep their order.
    pub async fn visitor_message(&self, outbound: &Outbound, client_msg_id: ClientMsgId, body: MessageBody) -> Result<(), Busy> {
        match &self.at {
            Where::Here(addr) => addr.try_send(VisitorMessage { outbound: outbound.clone(), client_msg_id, body }).map_err(|_| Busy),
            Where::There(remote) => remote.visitor_message(outbound, client_msg_id, body).await,
        }
    }

    /// The visitor is typing (best effort: dropped when the mailbox is full).
    pub fn visitor_typing(&self, on: bool) {
        match &self.at {
            Where::Here(addr) => {
                let _ = addr.try_send(VisitorTyping(on));
            }
            Where::There(remote) => remote.visitor_typing(on),
        }
    }

    /// A staff member's reply from a dashboard, acked on `outbound`.
    pub fn staff_say(&self, author: Author, client_msg_id: ClientMsgId, body: MessageBody, outbound: Outbound) -> Result<(), Busy> {
        match &self.at {
            Where::Here(addr) => {
                let say = StaffSay { author, client_msg_id, body, outbound: Some(outbound), waiter: None };
                addr.try_send(say).map_err(|_| Busy)
            }
            Where::There(remote) => {
                remote.staff_say(author, client_msg_id, body, outbound);
                Ok(())
            }
        }
    }

    /// A staff member's reply over HTTP: resolves once it is stored.
    pub async fn staff_say_stored(&self, author: Author, client_msg_id: ClientMsgId, body: MessageBody) -> Result<Seq, PersistError> {
        match &self.at {
            Where::Here(addr) => {
                let (tx, rx) = oneshot::channel();
                let say = StaffSay { author, client_msg_id, body, outbound: None, waiter: Some(tx) };
                addr.try_send(say).map_err(|_| PersistError::Overloaded)?;
                rx.await.unwrap_or(Err(PersistError::Stopped))
            }
            Where::There(remote) => remote.staff_say_stored(author, client_msg_id, body).await,
        }
    }

    /// A staff member's video-call command (start, hangup, signal). Calls
    /// run on the node that runs the conversation: elsewhere it is `Busy`
    /// (the dashboard is told the call cannot start there).
    pub fn staff_call(&self, command: StaffCallCommand) -> Result<(), Busy> {
        match &self.at {
            Where::Here(addr) => addr.try_send(StaffCall(command)).map_err(|_| Busy),
            Where::There(_) => Err(Busy),
        }
    }

    /// A visitor socket's video-call frame (its socket is attached here).
    pub fn visitor_call(&self, command: VisitorCallCommand) -> Result<(), Busy> {
        match &self.at {
            Where::Here(addr) => addr.try_send(VisitorCall(command)).map_err(|_| Busy),
            Where::There(_) => Err(Busy),
        }
    }

    /// Pauses (`true`) or resumes the AI; returns who is in charge now.
    pub async fn takeover(&self, on: bool) -> Result<SessionHandler, Busy> {
        match &self.at {
            Where::Here(addr) => addr.send(Takeover(on)).await.map_err(|_| Busy),
            Where::There(remote) => remote.takeover(on).await,
        }
    }

    /// A staff member typing in the reply box (best effort).
    pub fn staff_typing(&self, on: bool) {
        match &self.at {
            Where::Here(addr) => {
                let _ = addr.try_send(StaffTyping(on));
            }
            Where::There(remote) => remote.staff_typing(on),
        }
    }

    /// Staff changed the status through the API (already stored). One per
    /// staff action: sent even when the mailbox is full. (Elsewhere: the hub
    /// publishes staff changes to every node; the owner applies them.)
    /// Staff read up to `seq` (already stored): the visitor sees it. Only
    /// the node running the conversation acts (others hear it on the bus).
    pub(crate) fn staff_read(&self, seq: Seq) {
        if let Where::Here(addr) = &self.at {
            let _ = addr.try_send(StaffRead(seq));
        }
    }

    pub(crate) fn status_changed(&self, status: SessionStatus) {
        if let Where::Here(addr) = &self.at {
            addr.do_send(StatusChanged(status));
        }
    }

    /// The conversation was deleted (already stored): visitors are closed
    /// with 4004 and the actor stops. One per deletion.
    pub(crate) fn deleted(&self) {
        if let Where::Here(addr) = &self.at {
            addr.do_send(Deleted);
        }
    }

    /// This node lost the conversation's lease: visitors are closed with
    /// 1012 (to resume on the new owner) and the actor stops.
    pub(crate) fn lease_lost(&self) {
        if let Where::Here(addr) = &self.at {
            addr.do_send(LeaseLost);
        }
    }

    /// The stored messages after `after`, if all are still in memory
    /// (`None`: read them from PostgreSQL instead).
    pub async fn transcript_after(&self, after: SeenUpTo) -> Option<Vec<MessageView>> {
        match &self.at {
            Where::Here(addr) => addr.send(TranscriptAfter(after)).await.ok().flatten(),
            Where::There(remote) => remote.transcript_after(after).await,
        }
    }

    /// A message that arrived through a channel (webhook or relay),
    /// deduplicated on the channel's id; resolves once it is committed.
    /// A full mailbox is `Overloaded` (the webhook answers 503 and is resent).
    /// Gives up after `EXTERNAL_STORE_TIMEOUT` (`Stopped`: post it again).
    pub async fn store_external(&self, external_id: String, role: MessageRole, body: MessageBody) -> Result<Seq, PersistError> {
        match &self.at {
            Where::Here(addr) => {
                let (tx, rx) = oneshot::channel();
                addr.try_send(ExternalMessage { external_id, role, body, waiter: tx }).map_err(|_| PersistError::Overloaded)?;
                match tokio::time::timeout(EXTERNAL_STORE_TIMEOUT, rx).await {
                    Ok(Ok(outcome)) => outcome,
                    _ => Err(PersistError::Stopped),
                }
            }
            Where::There(remote) => remote.store_external(external_id, role, body).await,
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        match &self.at {
            Where::Here(addr) => addr.connected(),
            Where::There(_) => true,
        }
    }
}

/// The supervisor: every conversation event for the staff dashboards.
#[derive(Clone)]
pub struct SupervisorHandle {
    addr: Addr<Supervisor>,
    /// Set when an event that matters could not be queued; the supervisor
    /// then closes every dashboard so they reload (see `SUPERVISOR_MAILBOX`).
    fell_behind: Arc<AtomicBool>,
    /// Several nodes: every event is also published for the other nodes'
    /// supervisors.
    peers: Option<Arc<Cluster>>,
}

impl SupervisorHandle {
    fn start(arbiter: &ArbiterHandle, supervisor: Supervisor, peers: Option<Arc<Cluster>>) -> Self {
        let fell_behind = Arc::new(AtomicBool::new(false));
        let flag = fell_behind.clone();
        let addr = Supervisor::start_in_arbiter(arbiter, move |_| supervisor.watching_for_overflow(flag));
        Self { addr, fell_behind, peers }
    }

    /// Something happened in a conversation: this node's dashboards hear it,
    /// and every other node's. Never waits (see `event_from_peer`).
    pub fn event(&self, event: SessionEvent) {
        if let Some(peers) = &self.peers {
            peers.publish(&wire::Event::of(&event));
        }
        self.event_from_peer(event);
    }

    /// An event for this node's dashboards only (one another node published).
    /// Never waits: a full mailbox drops typing indicators and marks the
    /// supervisor as fallen behind.
    pub(crate) fn event_from_peer(&self, event: SessionEvent) {
        if self.addr.try_send(event.clone()).is_err() && !matches!(event, SessionEvent::Typing { .. }) {
            metrics::counter!("chathub_supervisor_overflows_total").increment(1);
            self.fell_behind.store(true, Ordering::SeqCst);
        }
    }

    /// Every dashboard is closed (4008) at the next tick, to reload from
    /// PostgreSQL what it may have missed.
    pub(crate) fn reload_dashboards(&self) {
        self.fell_behind.store(true, Ordering::SeqCst);
    }

    /// A frame for every dashboard on this node (best effort: dropped when
    /// the mailbox is full; the next one follows shortly).
    pub fn to_all_dashboards(&self, frame: bytestring::ByteString) {
        let _ = self.addr.try_send(super::supervisor::ToAllDashboards(frame));
    }

    /// A dashboard socket opened (one per socket: always delivered).
    pub fn dashboard_connected(&self, outbound: Outbound) {
        self.addr.do_send(DashboardConnected(outbound));
    }

    /// A dashboard socket closed (one per socket: always delivered).
    pub fn dashboard_gone(&self, conn: ConnId) {
        self.addr.do_send(DashboardGone(conn));
    }

    /// Starts streaming a conversation's messages to a dashboard; waits for
    /// room in the mailbox. `Busy` if the supervisor stopped.
    pub async fn watch(&self, conn: ConnId, session_id: SessionId) -> Result<(), Busy> {
        self.addr.send(Watch { conn, session_id }).await.map_err(|_| Busy)
    }

    /// Stops streaming a conversation to a dashboard. When the mailbox is
    /// full it is dropped: the dashboard then gets frames of a conversation
    /// it no longer shows, which the client ignores.
    pub fn unwatch(&self, conn: ConnId, session_id: SessionId) {
        let _ = self.addr.try_send(Unwatch { conn, session_id });
    }
}

/// The persistence actor: group commit for every conversation.
#[derive(Clone)]
pub struct PersistenceHandle {
    addr: Addr<Persistence>,
}

impl PersistenceHandle {
    fn start(arbiter: &ArbiterHandle, persistence: Persistence) -> Self {
        Self { addr: Persistence::start_in_arbiter(arbiter, move |_| persistence) }
    }

    /// Starts a persistence actor on the current actor system (see
    /// `block_on`), for tools outside the server: the load generator.
    pub fn spawn(persistence: Persistence) -> Self {
        Self { addr: persistence.start() }
    }

    /// Writes one conversation's changes; resolves after COMMIT. The actor's
    /// own queue is bounded by rows (`PERSIST_QUEUE`): past it, `Overloaded`.
    pub async fn persist(&self, write: SessionWrite) -> Result<(), PersistError> {
        self.addr.send(Persist(write)).await.unwrap_or(Err(PersistError::Stopped))
    }

    /// Resolves once nothing is queued or being written (shutdown).
    pub async fn drain(&self) {
        let _ = self.addr.send(Drain).await;
    }
}

/// The notifier: delivers outbox rows.
#[derive(Clone)]
pub struct NotifierHandle {
    addr: Addr<Notifier>,
}

impl NotifierHandle {
    fn start(arbiter: &ArbiterHandle, notifier: Notifier) -> Self {
        Self { addr: Notifier::start_in_arbiter(arbiter, move |_| notifier) }
    }

    /// New outbox rows are due. When the mailbox is full a wake is already
    /// waiting, so this one is dropped; the periodic poll catches anything.
    pub fn wake(&self) {
        let _ = self.addr.try_send(Wake);
    }

    /// What the persistence actor wakes after committing outbox rows.
    fn recipient(&self) -> Recipient<Wake> {
        self.addr.clone().recipient()
    }
}

/// Runs `future` on a new actor system and returns its output: what a tool
/// outside the server (the load generator) needs to start actors.
pub fn block_on<F: Future>(future: F) -> F::Output {
    actix::System::new().block_on(future)
}

/// The hub-wide actors (persistence, supervisor, notifier), running on a
/// thread of their own so conversations' HTTP workers never wait behind them.
pub struct HubActors {
    arbiter: Arbiter,
    pub persistence: PersistenceHandle,
    pub supervisor: SupervisorHandle,
    pub notifier: NotifierHandle,
}

impl HubActors {
    pub fn start(db: &Db, config: &Arc<Config>, attachments: Arc<AttachmentStore>, cluster: Option<Arc<Cluster>>) -> anyhow::Result<Self> {
        let arbiter = Arbiter::new();
        let handle = arbiter.handle();
        let supervisor = SupervisorHandle::start(&handle, Supervisor::new(db.clone(), config.inactive_after_hours), cluster);
        let notifier = NotifierHandle::start(&handle, Notifier::new(db.clone(), config.clone(), attachments, supervisor.clone())?);
        let limits = &config.limits;
        let persistence = Persistence::new(db.clone(), config.timezone, limits.persist_queue, limits.persist_batch, Some(notifier.recipient()))
            .with_in_flight(limits.persist_in_flight)
            .with_gathering(std::time::Duration::from_micros(limits.persist_gather_us));
        let persistence = PersistenceHandle::start(&handle, persistence);
        Ok(Self { arbiter, persistence, supervisor, notifier })
    }

    /// Stops their thread (after the persistence actor has been drained).
    pub fn stop(self) {
        self.arbiter.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::{self, Next};
    use crate::protocol::MessageView;

    /// A flood that overflows the supervisor's mailbox is not silently
    /// dropped: every dashboard is closed with 4008, to reload what it missed.
    #[actix_web::test]
    async fn an_overflowing_supervisor_closes_every_dashboard_so_it_reloads() {
        let db = crate::postgres::pool("postgres://chathub@localhost/never-connected", 1).unwrap();
        let supervisor = SupervisorHandle::start(&actix::Arbiter::current(), Supervisor::new(db, 24).with_mailbox(4), None);
        let (dashboard, mut frames) = outbound::channel(10_000);
        supervisor.dashboard_connected(dashboard);
        let message = Arc::new(MessageView {
            seq: 1,
            role: MessageRole::Visitor,
            text: "hello".into(),
            created_at: chrono::Utc::now(),
            author: None,
            attachments: Vec::new(),
        });
        // Without yielding, the actor cannot drain its mailbox meanwhile.
        for _ in 0..100 {
            supervisor.event(SessionEvent::MessageStored { session_id: SessionId::new(), message: message.clone() });
        }
        assert!(supervisor.fell_behind.load(Ordering::SeqCst), "the overflow is noticed");
        let closed = async {
            loop {
                match frames.try_next() {
                    Some(Next::Close(code, _)) => return code,
                    Some(Next::Frame(..)) => {}
                    None => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                }
            }
        };
        let code = tokio::time::timeout(std::time::Duration::from_secs(5), closed).await.expect("the dashboard is closed");
        assert_eq!(code, crate::protocol::close::SLOW_CONSUMER);
    }
}

