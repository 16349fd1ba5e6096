//! The hub: the registry of live conversation actors (a `DashMap` from
//! session id to address) and what every conversation shares: the database,
//! the persistence and supervisor actors, the agent and the completion rules.
//! A conversation not in memory is rebuilt from PostgreSQL on demand.

use std::sync::Arc;

use actix::prelude::*;
use chrono::Utc;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use uuid::Uuid;

use super::chat_session::{ChatSession, SessionSnapshot};
use super::cluster::{Cluster, Owner, RemoteSession, SettingsChange, wire};
use super::handles::{NotifierHandle, PersistenceHandle, SessionHandle, SupervisorHandle};
use super::persistence::{NewSessionRow, SessionWrite};
use super::supervisor::SessionEvent;
use crate::agents::Agent;
use crate::completion::Rules;
use crate::config::Config;
use crate::domain::{Channel, Customer, Seq, SessionId, SessionStatus};
use crate::postgres::Db;
use crate::store::conversations;
pub use crate::store::conversations::{WrittenRow, WrittenSince};

/// Messages kept in a live conversation's memory; older ones are read from
/// PostgreSQL when a resuming client needs them.
pub const TRANSCRIPT_IN_MEMORY: usize = 200;

pub struct Hub {
    pub db: Db,
    pub config: Arc<Config>,
    pub persistence: PersistenceHandle,
    pub supervisor: SupervisorHandle,
    pub notifier: NotifierHandle,
    pub agent: Arc<dyn Agent>,
    /// For best-effort calls to channels (typing indicators).
    pub http: reqwest::Client,
    pub rules: Rules,
    /// What the AI did recently, as the conversations report it.
    pub ai_health: Arc<crate::ai_health::AiHealth>,
    /// The dashboards that want stats pushed (`stats_watch`).
    pub stats: super::stats_watch::StatsSubscriptions,
    /// Live conversations (with the fencing number of their lease, on
    /// several nodes). An entry whose actor has stopped is replaced on the
    /// next lookup; the actor removes its own entry when it stops.
    sessions: DashMap<SessionId, (Addr<ChatSession>, Option<i64>)>,
    /// Several nodes: the cluster this node belongs to (`None`: one node).
    cluster: Option<Arc<Cluster>>,
    /// Several nodes: conversations being claimed and started here, so two
    /// requests for one conversation claim its lease once.
    starting: DashMap<SessionId, Arc<tokio::sync::Mutex<()>>>,
    /// (channel, conversation key) → session, for live channel conversations:
    /// a webhook for a known sender needs no database lookup.
    external: DashMap<(Channel, String), SessionId>,
    /// Conversations opened at a visitor's `hello` that nobody has written
    /// in yet. Their row is not stored: it is written with the first
    /// message, in the same transaction, so a widget opened and left (or a
    /// flood of hellos) leaves nothing in PostgreSQL. Held only while a
    /// socket or an actor has it: removed when the first write commits
    /// (`session_saved`), or when the last holder goes (`forget_unsaved`).
    /// Boxed: the map keeps room for about twice its entries (a table of a
    /// power of two per shard), and an empty slot then costs a pointer, not
    /// a row (about 200 bytes): 0.2 KB less per idle visitor at 15k sockets.
    unsaved: DashMap<SessionId, Box<NewSessionRow>>,
    /// Visitor token hash → unsaved conversation, so a second tab resuming
    /// with the token finds it before it is stored. Keyed by the hash
    /// itself, so an entry allocates nothing of its own.
    unsaved_tokens: DashMap<[u8; 32], SessionId>,
}

impl Hub {
    pub fn new(
        db: Db,
        config: Arc<Config>,
        persistence: PersistenceHandle,
        supervisor: SupervisorHandle,
        notifier: NotifierHandle,
        agent: Arc<dyn Agent>,
        rules: Rules,
        cluster: Option<Arc<Cluster>>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
        Ok(Self {
            db,
            config,
            persistence,
            supervisor,
            notifier,
            agent,
            http,
            rules,
            ai_health: Default::default(),
            stats: Default::default(),
            sessions: DashMap::new(),
            cluster,
            starting: DashMap::new(),
            external: DashMap::new(),
            unsaved: DashMap::new(),
            unsaved_tokens: DashMap::new(),
        })
    }

    /// The conversation's actor, if it runs on this node.
    pub fn live(&self, id: SessionId) -> Option<SessionHandle> {
        self.sessions.get(&id).map(|a| SessionHandle::new(id, a.0.clone())).filter(SessionHandle::is_running)
    }

    /// The conversation if it runs now, here or (several nodes) on another
    /// node; never starts it. For best-effort signals such as typing.
    pub async fn running(&self, id: SessionId) -> Option<SessionHandle> {
        if let Some(here) = self.live(id) {
            return Some(here);
        }
        let cluster = self.cluster.as_ref()?;
        let node = cluster.running_elsewhere(id).await?;
        Some(SessionHandle::remote(RemoteSession::new(id, node, cluster.clone())))
    }

    /// Several nodes: the cluster (`None` on a single node).
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Opens a conversation for a visitor who said hello: an id and a row
    /// held in memory until the first message stores both. Nothing is written.
    pub fn open_session(&self, row: NewSessionRow) -> SessionId {
        let id = SessionId::new();
        if let Some(hash) = &row.visitor_token_hash {
            self.unsaved_tokens.insert(*hash, id);
        }
        self.unsaved.insert(id, Box::new(row));
        id
    }

    /// Whether `id` is a conversation opened but not stored yet.
    pub fn is_unsaved(&self, id: SessionId) -> bool {
        self.unsaved.contains_key(&id)
    }

    /// The first write of an opened conversation committed its row.
    pub(crate) fn session_saved(&self, id: SessionId) {
        if self.drop_unsaved(id) {
            metrics::counter!("chathub_sessions_created_total").increment(1);
        }
    }

    /// The socket that opened a conversation nobody wrote in has gone (and
    /// no actor holds it): it is forgotten, as if never opened.
    pub fn forget_unsaved(&self, id: SessionId) {
        if self.live(id).is_none() {
            self.drop_unsaved(id);
        }
    }

    /// Removes an unsaved conversation and its token entry; whether it was there.
    fn drop_unsaved(&self, id: SessionId) -> bool {
        let Some((_, row)) = self.unsaved.remove(&id) else { return false };
        if let Some(hash) = row.visitor_token_hash {
            self.unsaved_tokens.remove(&hash);
        }
        true
    }

    /// The live actor for `id`, rebuilt from PostgreSQL if it was evicted.
    /// On several nodes, the conversation may run elsewhere: the handle then
    /// reaches it over the bus (see `cluster`). `None` if no such conversation exists.
    pub async fn session(self: &Arc<Self>, id: SessionId) -> anyhow::Result<Option<SessionHandle>> {
        self.find(id, true).await
    }

    /// Several nodes: the conversation's actor on this node, for a command
    /// another node forwarded here. `Err` if another node holds its lease.
    pub(crate) async fn session_here(self: &Arc<Self>, id: SessionId) -> anyhow::Result<Option<SessionHandle>> {
        self.find(id, false).await
    }

    /// `session` (`may_forward`) or `session_here`.
    async fn find(self: &Arc<Self>, id: SessionId, may_forward: bool) -> anyhow::Result<Option<SessionHandle>> {
        if let Some(addr) = self.live(id) {
            return Ok(Some(addr));
        }
        let Some(cluster) = self.cluster.clone() else { return self.start_here(id, None).await };
        // One claim per conversation at a time on this node: two requests
        // racing to start it must not take the lease twice.
        let lock = self.starting.entry(id).or_default().clone();
        let _starting = lock.lock().await;
        let found = match self.live(id) {
            Some(addr) => Ok(Some(addr)),
            // Opened here and not stored yet: nobody else can run it.
            None if !may_forward || self.unsaved.contains_key(&id) => match cluster.claim_here(id).await? {
                Some(fence) => self.start_claimed(&cluster, id, fence).await,
                None => Err(anyhow::anyhow!("another node runs conversation {id}")),
            },
            None => match cluster.locate(id).await? {
                Owner::Here(fence) => self.start_claimed(&cluster, id, fence).await,
                Owner::There(node) => Ok(Some(SessionHandle::remote(RemoteSession::new(id, node, cluster.clone())))),
            },
        };
        self.starting.remove_if(&id, |_, l| Arc::strong_count(l) <= 2);
        found
    }

    /// Starts the actor under a lease just claimed; gives the lease back if
    /// there is no such conversation (or it could not be loaded).
    async fn start_claimed(self: &Arc<Self>, cluster: &Arc<Cluster>, id: SessionId, fence: i64) -> anyhow::Result<Option<SessionHandle>> {
        let found = self.start_here(id, Some(fence)).await;
        if !matches!(found, Ok(Some(_))) {
            cluster.release(id, fence);
        }
        found
    }

    /// Starts the actor here from what is stored (or from the unsaved row),
    /// under `fence` on several nodes. The lease is claimed before this
    /// reads anything, so what it reads is final.
    async fn start_here(self: &Arc<Self>, id: SessionId, fence: Option<i64>) -> anyhow::Result<Option<SessionHandle>> {
        if let Some(row) = self.unsaved.get(&id).map(|r| NewSessionRow::clone(&r)) {
            return Ok(Some(self.start(SessionSnapshot::unsaved(id, row).fenced(fence))));
        }
        let Some(stored) = conversations::load(&self.db, id, TRANSCRIPT_IN_MEMORY as i64).await? else { return Ok(None) };
        let snapshot = SessionSnapshot::stored(id, stored).fenced(fence);
        Ok(Some(self.start(snapshot)))
    }

    /// Starts an actor for the snapshot unless another task got there first.
    fn start(self: &Arc<Self>, snapshot: SessionSnapshot) -> SessionHandle {
        let (id, fence) = (snapshot.id, snapshot.fence);
        let addr = match self.sessions.entry(id) {
            Entry::Occupied(mut entry) if !entry.get().0.connected() => {
                let addr = ChatSession::new(self.clone(), snapshot).start();
                entry.insert((addr.clone(), fence));
                addr
            }
            Entry::Occupied(entry) => entry.get().0.clone(),
            Entry::Vacant(entry) => {
                let addr = ChatSession::new(self.clone(), snapshot).start();
                entry.insert((addr.clone(), fence));
                metrics::gauge!("chathub_live_sessions").increment(1.0);
                addr
            }
        };
        SessionHandle::new(id, addr)
    }

    /// Called by a stopping actor: removes its entry if it is still the one
    /// registered, and gives its lease back.
    pub(crate) fn forget(&self, id: SessionId, addr: &Addr<ChatSession>, external: Option<(Channel, String)>, fence: Option<i64>) {
        if self.sessions.remove_if(&id, |_, registered| registered.0 == *addr).is_some() {
            metrics::gauge!("chathub_live_sessions").decrement(1.0);
            if let Some(key) = external {
                self.external.remove_if(&key, |_, known| *known == id);
            }
        }
        if let (Some(cluster), Some(fence)) = (&self.cluster, fence) {
            cluster.release(id, fence);
        }
    }

    /// Several nodes: the running actors and their leases' fencing numbers.
    pub(crate) fn leased_sessions(&self) -> Vec<(SessionId, i64)> {
        self.sessions.iter().filter(|e| e.value().0.connected()).filter_map(|e| e.value().1.map(|f| (*e.key(), f))).collect()
    }

    /// Several nodes: another node took the conversation's lease.
    pub(crate) fn lease_lost(&self, id: SessionId) {
        if let Some(session) = self.live(id) {
            session.lease_lost();
        }
    }

    /// Re-reads the enabled completion rules into the live set.
    pub async fn reload_rules(&self) -> anyhow::Result<()> {
        self.rules.replace(crate::completion::RuleSet::load(&self.db, &self.config.booking_url).await?);
        Ok(())
    }

    /// Settings changed here (stored): the other nodes reload theirs.
    pub fn settings_changed(&self, change: SettingsChange) {
        if let Some(cluster) = &self.cluster {
            cluster.publish(&match change {
                SettingsChange::Rules => wire::Event::RulesChanged,
                SettingsChange::Site(key) => wire::Event::SiteChanged { key },
            });
        }
    }

    /// Staff changed a session (API): dashboards get its new summary.
    pub fn session_changed(&self, id: SessionId) {
        self.supervisor.event(SessionEvent::SessionChanged { session_id: id });
    }

    /// An email of a session was queued or tracked (stored): the session's
    /// watchers on every node see it.
    pub fn email_changed(&self, id: SessionId, email: crate::protocol::EmailView) {
        self.supervisor.event(SessionEvent::EmailChanged { session_id: id, email: Arc::new(email) });
    }

    /// The visitor read up to `seq` (already stored): watchers on every node
    /// see it, and the list's summary (`visitor_read_seq`).
    /// Replays `sessions` against the agent configured now, in the background.
    pub fn replay(self: &Arc<Self>, id: Uuid, sessions: Vec<Uuid>) {
        super::replay::start(self.clone(), id, sessions);
    }

    /// A channel reported our reply `seq` `delivered`, `read` or `failed`
    /// (stored): watching dashboards show it.
    pub fn channel_status(&self, id: SessionId, seq: Seq, status: String) {
        self.supervisor.event(SessionEvent::ChannelStatus { session_id: id, seq, status });
    }

    pub fn visitor_read(&self, id: SessionId, seq: Seq) {
        self.supervisor.event(SessionEvent::VisitorRead { session_id: id, seq });
    }

    /// Staff read up to `seq` (already stored): the visitor's sockets hear it
    /// from the node running the conversation, and the summary's `unread`
    /// clears.
    pub fn staff_read(&self, id: SessionId, seq: Seq) {
        if let Some(session) = self.live(id) {
            session.staff_read(seq);
        }
        if let Some(cluster) = &self.cluster {
            cluster.publish(&wire::Event::StaffRead { session: id, seq });
        }
        self.session_changed(id);
    }

    /// Staff changed a session's status (already stored): a live actor
    /// updates its visitors.
    pub fn status_changed(&self, id: SessionId, status: SessionStatus) {
        if let Some(session) = self.live(id) {
            session.status_changed(status);
        }
        if let Some(cluster) = &self.cluster {
            cluster.publish(&wire::Event::StatusChanged { session: id, status });
        }
    }

    /// A session was deleted (already stored): its visitors are closed with
    /// 4004, its actor stops, dashboards drop it.
    pub fn session_deleted(&self, id: SessionId) {
        if let Some(session) = self.live(id) {
            session.deleted();
        }
        self.supervisor.event(SessionEvent::SessionDeleted { session_id: id });
    }

    /// The conversation for a channel's conversation key (Messenger PSID,
    /// WhatsApp number, relay session id), created on first contact. Two
    /// webhooks racing to create it end up with the same row.
    pub async fn external_session(
        self: &Arc<Self>,
        channel: Channel,
        external_id: &str,
        customer: &Customer,
        metadata: serde_json::Value,
    ) -> anyhow::Result<SessionHandle> {
        let key = (channel, external_id.to_owned());
        if let Some(found) = self.external.get(&key).and_then(|id| self.live(*id)) {
            return Ok(found);
        }
        let id = match conversations::find_external(&self.db, channel, external_id).await? {
            Some(id) => id,
            None => self.create_external(channel, external_id, customer, metadata).await?,
        };
        let actor = self.session(id).await?.ok_or_else(|| anyhow::anyhow!("session {id} vanished"))?;
        self.external.insert(key, id);
        Ok(actor)
    }

    /// Stores a channel conversation's row through the persistence actor,
    /// the one path that creates session rows. Two webhooks racing for a new
    /// sender: the loser's insert fails on `UNIQUE (channel, external_id)`,
    /// and it takes the winner's row.
    async fn create_external(&self, channel: Channel, external_id: &str, customer: &Customer, metadata: serde_json::Value) -> anyhow::Result<SessionId> {
        let id = SessionId::new();
        let row = NewSessionRow {
            channel,
            external_id: Some(external_id.to_owned()),
            site_id: None,
            visitor_token_hash: None,
            customer: customer.clone(),
            metadata,
            created_at: Utc::now(),
        };
        let write = SessionWrite::create_only(id, row);
        match self.persistence.persist(write).await {
            Ok(()) => {
                metrics::counter!("chathub_sessions_created_total").increment(1);
                self.session_changed(id);
                Ok(id)
            }
            Err(e) => match conversations::find_external(&self.db, channel, external_id).await? {
                Some(winner) => Ok(winner),
                None => Err(e.into()),
            },
        }
    }

    /// The conversation a visitor token belongs to, with its site.
    pub async fn find_by_visitor_token(&self, token: &str) -> anyhow::Result<Option<(SessionId, Option<Uuid>)>> {
        let hash = crate::auth::sha256(token);
        if let Some(id) = self.unsaved_tokens.get(&hash).map(|id| *id) {
            if let Some(row) = self.unsaved.get(&id) {
                return Ok(Some((id, row.site_id)));
            }
        }
        Ok(conversations::find_by_visitor_token(&self.db, &hash).await?)
    }

    /// Records a failure in the errors table (shown on the dashboard). Never
    /// fails the caller: a lost error row is logged instead.
    pub fn record_error(&self, source: &str, message: String, details: serde_json::Value, session_id: Option<SessionId>) {
        let db = self.db.clone();
        let source = source.to_owned();
        actix::spawn(async move {
            let error = crate::store::errors::NewError {
                source: &source,
                workflow: None,
                message: &message,
                details: Some(&details),
                session_id: session_id.map(|s| s.0),
            };
            if let Err(e) = crate::store::errors::insert(&db, error).await {
                tracing::error!(error = %e, %source, %message, "could not record an error row");
            }
        });
    }
}
