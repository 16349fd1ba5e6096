//! The hub: the registry of live conversation actors (a `DashMap` from
//! session id to address) and what every conversation shares: the database,
//! the persistence and supervisor actors, the agent and the completion rules.
//! A conversation not in memory is rebuilt from PostgreSQL on demand.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use uuid::Uuid;

use super::chat_session::{ChatSession, Deleted, ExternalMessage, SessionSnapshot, StatusChanged};
use super::persistence::{NewSessionRow, Persist, PersistError, Persistence, SessionPatch, SessionWrite};
use super::notifier::Notifier;
use super::supervisor::{SessionEvent, Supervisor};
use crate::agents::Agent;
use crate::completion::Rules;
use crate::config::Config;
use crate::domain::{Channel, ChatText, Customer, Handler as SessionHandler, MessageRole, SessionId, SessionStatus};
use crate::postgres::Db;

/// Messages kept in a live conversation's memory; older ones are read from
/// PostgreSQL when a resuming client needs them.
pub const TRANSCRIPT_IN_MEMORY: usize = 200;
/// How long a webhook or relay request waits for its message to be stored.
const EXTERNAL_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Hub {
    pub db: Db,
    pub config: Arc<Config>,
    pub persistence: Addr<Persistence>,
    pub supervisor: Addr<Supervisor>,
    pub notifier: Addr<Notifier>,
    pub agent: Arc<dyn Agent>,
    /// For best-effort calls to channels (typing indicators).
    pub http: reqwest::Client,
    pub rules: Rules,
    /// Live conversations. An entry whose actor has stopped is replaced on
    /// the next lookup; the actor removes its own entry when it stops.
    sessions: DashMap<SessionId, Addr<ChatSession>>,
    /// (channel, conversation key) → session, for live channel conversations:
    /// a webhook for a known sender needs no database lookup.
    external: DashMap<(Channel, String), SessionId>,
    /// Conversations created at a visitor's `hello` whose actor has not
    /// started yet (nobody wrote): their actor starts from this, without
    /// reading back the row just written. Removed when the actor starts,
    /// the socket closes first, or staff delete the conversation; since
    /// every actor start takes it out, it can never be stale.
    fresh: DashMap<SessionId, FreshSession>,
}

/// What a new conversation's actor starts from (the rest is defaults).
struct FreshSession {
    channel: Channel,
    site_id: Option<uuid::Uuid>,
    customer: crate::domain::Customer,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl Hub {
    pub fn new(
        db: Db,
        config: Arc<Config>,
        persistence: Addr<Persistence>,
        supervisor: Addr<Supervisor>,
        notifier: Addr<Notifier>,
        agent: Arc<dyn Agent>,
        rules: Rules,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
        Ok(Self { db, config, persistence, supervisor, notifier, agent, http, rules, sessions: DashMap::new(), external: DashMap::new(), fresh: DashMap::new() })
    }

    /// Conversations currently in memory.
    pub fn live_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn live(&self, id: SessionId) -> Option<Addr<ChatSession>> {
        self.sessions.get(&id).map(|a| a.clone()).filter(|a| a.connected())
    }

    /// Creates a conversation: its row is committed before this returns, so
    /// the id (and the visitor's token) can be handed out safely.
    pub async fn create_session(
        self: &Arc<Self>,
        row: NewSessionRow,
    ) -> Result<(SessionId, Addr<ChatSession>), PersistError> {
        let id = SessionId::new();
        let snapshot = SessionSnapshot::new_session(id, &row);
        self.insert_session(id, row).await?;
        Ok((id, self.start(snapshot)))
    }

    /// Creates a conversation without starting its actor (a visitor who has
    /// not written yet); `session` starts it when it is needed. The caller
    /// calls `forget_fresh` if it goes away before that.
    pub async fn create_session_row(&self, row: NewSessionRow) -> Result<SessionId, PersistError> {
        let id = SessionId::new();
        let fresh = FreshSession { channel: row.channel, site_id: row.site_id, customer: row.customer.clone(), created_at: row.created_at };
        self.insert_session(id, row).await?;
        self.fresh.insert(id, fresh);
        Ok(id)
    }

    /// The visitor of a conversation nobody wrote in has gone: a later
    /// resume rebuilds it from PostgreSQL like any other.
    pub fn forget_fresh(&self, id: SessionId) {
        self.fresh.remove(&id);
    }

    async fn insert_session(&self, id: SessionId, row: NewSessionRow) -> Result<(), PersistError> {
        let write = SessionWrite {
            session_id: id,
            channel: row.channel,
            create: Some(row),
            messages: Vec::new(),
            patch: SessionPatch::default(),
            outbox: Vec::new(),
        };
        self.persistence.send(Persist(write)).await.map_err(|_| PersistError::Stopped)??;
        metrics::counter!("chathub_sessions_created_total").increment(1);
        Ok(())
    }

    /// The live actor for `id`, rebuilt from PostgreSQL if it was evicted.
    /// `None` if no such conversation exists.
    pub async fn session(self: &Arc<Self>, id: SessionId) -> anyhow::Result<Option<Addr<ChatSession>>> {
        if let Some(addr) = self.live(id) {
            return Ok(Some(addr));
        }
        if let Some((_, f)) = self.fresh.remove(&id) {
            return Ok(Some(self.start(SessionSnapshot::fresh(id, f.channel, f.site_id, f.customer, f.created_at))));
        }
        let Some(snapshot) = load_snapshot(&self.db, id).await? else { return Ok(None) };
        Ok(Some(self.start(snapshot)))
    }

    /// Starts an actor for the snapshot unless another task got there first.
    fn start(self: &Arc<Self>, snapshot: SessionSnapshot) -> Addr<ChatSession> {
        let id = snapshot.id;
        match self.sessions.entry(id) {
            Entry::Occupied(mut entry) if !entry.get().connected() => {
                let addr = ChatSession::new(self.clone(), snapshot).start();
                entry.insert(addr.clone());
                addr
            }
            Entry::Occupied(entry) => entry.get().clone(),
            Entry::Vacant(entry) => {
                let addr = ChatSession::new(self.clone(), snapshot).start();
                entry.insert(addr.clone());
                metrics::gauge!("chathub_live_sessions").increment(1.0);
                addr
            }
        }
    }

    /// Called by a stopping actor: removes its entry if it is still the one
    /// registered.
    pub(crate) fn forget(&self, id: SessionId, addr: &Addr<ChatSession>, external: Option<(Channel, String)>) {
        if self.sessions.remove_if(&id, |_, registered| registered == addr).is_some() {
            metrics::gauge!("chathub_live_sessions").decrement(1.0);
            if let Some(key) = external {
                self.external.remove_if(&key, |_, known| *known == id);
            }
        }
    }

    /// Staff changed a session (API): dashboards get its new summary.
    pub fn session_changed(&self, id: SessionId) {
        self.supervisor.do_send(SessionEvent::SessionChanged { session_id: id });
    }

    /// Staff changed a session's status (already stored): a live actor
    /// updates its visitors.
    pub fn status_changed(&self, id: SessionId, status: SessionStatus) {
        if let Some(actor) = self.live(id) {
            actor.do_send(StatusChanged(status));
        }
    }

    /// A session was deleted (already stored): its visitors are closed with
    /// 4004, its actor stops, dashboards drop it.
    pub fn session_deleted(&self, id: SessionId) {
        self.fresh.remove(&id);
        if let Some(actor) = self.live(id) {
            actor.do_send(Deleted);
        }
        self.supervisor.do_send(SessionEvent::SessionDeleted { session_id: id });
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
    ) -> anyhow::Result<Addr<ChatSession>> {
        let key = (channel, external_id.to_owned());
        if let Some(actor) = self.external.get(&key).and_then(|id| self.live(*id)) {
            return Ok(actor);
        }
        let client = self.db.get().await?;
        let created = client
            .query_opt(
                "INSERT INTO sessions (id, channel, external_id, customer_name, customer_email, customer_phone, metadata)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (channel, external_id) DO NOTHING RETURNING id",
                &[&Uuid::new_v4(), &channel.as_str(), &external_id, &customer.name, &customer.email, &customer.phone, &metadata],
            )
            .await?;
        let is_new = created.is_some();
        let id: Uuid = match created {
            Some(row) => {
                metrics::counter!("chathub_sessions_created_total").increment(1);
                row.get(0)
            }
            None => client
                .query_one("SELECT id FROM sessions WHERE channel = $1 AND external_id = $2", &[&channel.as_str(), &external_id])
                .await?
                .get(0),
        };
        // Loading the actor takes a connection of its own: give this one back
        // first, or concurrent webhooks could exhaust the pool waiting on each other.
        drop(client);
        let id = SessionId(id);
        if is_new {
            self.session_changed(id);
        }
        let actor = self.session(id).await?.ok_or_else(|| anyhow::anyhow!("session {id} vanished"))?;
        self.external.insert(key, id);
        Ok(actor)
    }

    /// Stores a message that arrived through a channel (webhook or relay) in
    /// its conversation, deduplicated on the channel's id; resolves once it
    /// is committed, or fails after `EXTERNAL_STORE_TIMEOUT`.
    pub async fn store_external(
        &self,
        actor: &Addr<ChatSession>,
        external_id: String,
        role: MessageRole,
        text: ChatText,
    ) -> Result<i64, PersistError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        actor.do_send(ExternalMessage { external_id, role, text, waiter: tx });
        match tokio::time::timeout(EXTERNAL_STORE_TIMEOUT, rx).await {
            Ok(Ok(outcome)) => outcome,
            _ => Err(PersistError::Stopped),
        }
    }

    /// The conversation a visitor token belongs to, with its site.
    pub async fn find_by_visitor_token(&self, token: &str) -> anyhow::Result<Option<(SessionId, Option<Uuid>)>> {
        let row = self
            .db
            .get()
            .await?
            .query_opt(
                "SELECT id, site_id FROM sessions WHERE visitor_token_hash = $1",
                &[&crate::auth::sha256(token)],
            )
            .await?;
        Ok(row.map(|r| (SessionId(r.get(0)), r.get(1))))
    }

    /// Records a failure in the errors table (shown on the dashboard). Never
    /// fails the caller: a lost error row is logged instead.
    pub fn record_error(&self, source: &str, message: String, details: serde_json::Value, session_id: Option<SessionId>) {
        let db = self.db.clone();
        let source = source.to_owned();
        actix::spawn(async move {
            let outcome = async {
                db.get()
                    .await?
                    .execute(
                        "INSERT INTO errors (source, message, details, session_id) VALUES ($1, $2, $3, $4)",
                        &[&source, &message, &details, &session_id.map(|s| s.0)],
                    )
                    .await?;
                anyhow::Ok(())
            };
            if let Err(e) = outcome.await {
                tracing::error!(error = %e, %source, %message, "could not record an error row");
            }
        });
    }
}

async fn load_snapshot(db: &Db, id: SessionId) -> anyhow::Result<Option<SessionSnapshot>> {
    let client = db.get().await?;
    let Some(row) = client
        .query_opt(
            "SELECT channel, site_id, customer_name, customer_email, customer_phone, status, handler,
                    completed_at, completion_rule, last_seq, created_at, COALESCE(last_message_at, created_at),
                    external_id, COALESCE(metadata->>'source' = 'relay', false)
             FROM sessions WHERE id = $1",
            &[&id.0],
        )
        .await?
    else {
        return Ok(None);
    };
    let recent = client
        .query(
            "SELECT seq, role, text, created_at FROM messages WHERE session_id = $1 ORDER BY seq DESC LIMIT $2",
            &[&id.0, &(TRANSCRIPT_IN_MEMORY as i64)],
        )
        .await?;
    let mut client_ids: HashMap<String, i64> = HashMap::new();
    let mut external_ids: HashMap<String, i64> = HashMap::new();
    for key in client
        .query(
            "SELECT client_msg_id, external_id, seq FROM messages
             WHERE session_id = $1 AND (client_msg_id IS NOT NULL OR external_id IS NOT NULL)",
            &[&id.0],
        )
        .await?
    {
        if let Some(c) = key.get::<_, Option<String>>(0) {
            client_ids.insert(c, key.get(2));
        }
        if let Some(e) = key.get::<_, Option<String>>(1) {
            external_ids.insert(e, key.get(2));
        }
    }
    let completed_at: Option<DateTime<Utc>> = row.get(7);
    Ok(Some(SessionSnapshot {
        id,
        channel: Channel::parse(row.get(0)).unwrap_or(Channel::Web),
        site_id: row.get(1),
        customer: Customer { name: row.get(2), email: row.get(3), phone: row.get(4) },
        status: SessionStatus::parse(row.get(5)).unwrap_or(SessionStatus::Active),
        handler: SessionHandler::parse(row.get(6)).unwrap_or(SessionHandler::Ai),
        completed_at,
        completion_rule: row.get(8),
        last_seq: row.get(9),
        created_at: row.get(10),
        last_activity: row.get(11),
        transcript: recent.iter().rev().map(|r| crate::sessions::message_from_row(r, 0)).collect(),
        client_ids,
        external_ids,
        external_id: row.get(12),
        relay: row.get(13),
    }))
}
