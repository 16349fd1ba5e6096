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

use super::chat_session::{ChatSession, SessionSnapshot};
use super::handles::{NotifierHandle, PersistenceHandle, SessionHandle, SupervisorHandle};
use super::persistence::NewSessionRow;
use super::supervisor::SessionEvent;
use crate::agents::Agent;
use crate::completion::Rules;
use crate::config::Config;
use crate::domain::{Channel, Customer, Handler as SessionHandler, SessionId, SessionStatus};
use crate::postgres::Db;

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
    /// Live conversations. An entry whose actor has stopped is replaced on
    /// the next lookup; the actor removes its own entry when it stops.
    sessions: DashMap<SessionId, Addr<ChatSession>>,
    /// (channel, conversation key) → session, for live channel conversations:
    /// a webhook for a known sender needs no database lookup.
    external: DashMap<(Channel, String), SessionId>,
    /// Conversations opened at a visitor's `hello` that nobody has written
    /// in yet. Their row is not stored: it is written with the first
    /// message, in the same transaction, so a widget opened and left (or a
    /// flood of hellos) leaves nothing in PostgreSQL. Held only while a
    /// socket or an actor has it: removed when the first write commits
    /// (`session_saved`), or when the last holder goes (`forget_unsaved`).
    unsaved: DashMap<SessionId, NewSessionRow>,
    /// Visitor token hash → unsaved conversation, so a second tab resuming
    /// with the token finds it before it is stored.
    unsaved_tokens: DashMap<Vec<u8>, SessionId>,
}

/// What the reconciliation of a failed write found stored.
#[derive(Debug)]
pub struct WrittenSince {
    /// Whether the session row exists (a first write may have stored it).
    pub session_exists: bool,
    /// The session's `last_seq` as stored.
    pub last_seq: crate::domain::Seq,
    /// The messages stored after the seq the actor knew, in order.
    pub rows: Vec<WrittenRow>,
    /// Channel message ids of the write that are stored in another conversation.
    pub taken_elsewhere: std::collections::HashSet<String>,
}

#[derive(Debug)]
pub struct WrittenRow {
    pub view: crate::protocol::MessageView,
    pub client_msg_id: Option<String>,
    pub external_id: Option<String>,
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
            sessions: DashMap::new(),
            external: DashMap::new(),
            unsaved: DashMap::new(),
            unsaved_tokens: DashMap::new(),
        })
    }

    pub fn live(&self, id: SessionId) -> Option<SessionHandle> {
        self.sessions.get(&id).map(|a| SessionHandle::new(id, a.clone())).filter(SessionHandle::is_running)
    }

    /// Opens a conversation for a visitor who said hello: an id and a row
    /// held in memory until the first message stores both. Nothing is written.
    pub fn open_session(&self, row: NewSessionRow) -> SessionId {
        let id = SessionId::new();
        if let Some(hash) = &row.visitor_token_hash {
            self.unsaved_tokens.insert(hash.clone(), id);
        }
        self.unsaved.insert(id, row);
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
    /// `None` if no such conversation exists.
    pub async fn session(self: &Arc<Self>, id: SessionId) -> anyhow::Result<Option<SessionHandle>> {
        if let Some(addr) = self.live(id) {
            return Ok(Some(addr));
        }
        if let Some(row) = self.unsaved.get(&id).map(|r| r.clone()) {
            return Ok(Some(self.start(SessionSnapshot::unsaved(id, row))));
        }
        let Some(snapshot) = load_snapshot(&self.db, id).await? else { return Ok(None) };
        Ok(Some(self.start(snapshot)))
    }

    /// Starts an actor for the snapshot unless another task got there first.
    fn start(self: &Arc<Self>, snapshot: SessionSnapshot) -> SessionHandle {
        let id = snapshot.id;
        let addr = match self.sessions.entry(id) {
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
        };
        SessionHandle::new(id, addr)
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
        self.supervisor.event(SessionEvent::SessionChanged { session_id: id });
    }

    /// Staff changed a session's status (already stored): a live actor
    /// updates its visitors.
    pub fn status_changed(&self, id: SessionId, status: SessionStatus) {
        if let Some(session) = self.live(id) {
            session.status_changed(status);
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

    /// The conversation a visitor token belongs to, with its site.
    pub async fn find_by_visitor_token(&self, token: &str) -> anyhow::Result<Option<(SessionId, Option<Uuid>)>> {
        let hash = crate::auth::sha256(token);
        if let Some(id) = self.unsaved_tokens.get(&hash).map(|id| *id) {
            if let Some(row) = self.unsaved.get(&id) {
                return Ok(Some((id, row.site_id)));
            }
        }
        let row = self
            .db
            .get()
            .await?
            .query_opt(
                "SELECT id, site_id FROM sessions WHERE visitor_token_hash = $1",
                &[&hash],
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
        unsaved: None,
    }))
}

/// What is stored for a conversation after `after` (its actor's last known
/// seq), and which of `external_ids` are stored in other conversations: the
/// truth a conversation re-reads after a write whose outcome is unknown.
pub async fn load_written_since(
    db: &Db,
    id: SessionId,
    channel: Channel,
    after: crate::domain::Seq,
    external_ids: &[String],
) -> anyhow::Result<WrittenSince> {
    let client = db.get().await?;
    let last_seq: Option<i64> =
        client.query_opt("SELECT last_seq FROM sessions WHERE id = $1", &[&id.0]).await?.map(|r| r.get(0));
    let rows = client
        .query(
            "SELECT seq, role, text, created_at, client_msg_id, external_id FROM messages
             WHERE session_id = $1 AND seq > $2 ORDER BY seq",
            &[&id.0, &after],
        )
        .await?
        .iter()
        .map(|r| WrittenRow { view: crate::sessions::message_from_row(r, 0), client_msg_id: r.get(4), external_id: r.get(5) })
        .collect();
    let taken_elsewhere = if external_ids.is_empty() {
        Default::default()
    } else {
        client
            .query(
                "SELECT external_id FROM messages WHERE channel = $1 AND external_id = ANY($2) AND session_id <> $3",
                &[&channel.as_str(), &external_ids, &id.0],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    Ok(WrittenSince { session_exists: last_seq.is_some(), last_seq: last_seq.unwrap_or(0), rows, taken_elsewhere })
}
