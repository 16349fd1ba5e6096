//! Conversation writes: what one conversation needs stored atomically
//! (`SessionWrite`: a new session row, messages, session changes, outbox
//! rows) and `write_batch`, which stores many of them in one transaction:
//! new sessions in one multi-row INSERT, all messages in one binary COPY, the
//! sessions' counters in one `UPDATE … FROM unnest(…)`, then each session's
//! changes and outbox rows. This is the only place session rows are created.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{Channel, Customer, Handler as SessionHandler, MessageRole, Seq, SessionId, SessionStatus};
use crate::postgres::Db;

/// Column types of the binary COPY into `messages`.
const MESSAGE_COLUMNS: [Type; 10] = [
    Type::UUID,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::UUID,
    Type::INT4,
    Type::TIMESTAMPTZ,
];

/// A session row to create.
#[derive(Debug, Clone)]
pub struct NewSessionRow {
    pub channel: Channel,
    /// The channel's conversation key, when it has one.
    pub external_id: Option<String>,
    pub site_id: Option<Uuid>,
    pub visitor_token_hash: Option<Vec<u8>>,
    pub customer: Customer,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

/// A message to append; `seq` was assigned by the conversation's actor.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub seq: Seq,
    pub role: MessageRole,
    pub text: String,
    pub client_msg_id: Option<String>,
    pub external_id: Option<String>,
    pub author_id: Option<Uuid>,
    pub latency_ms: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// Changes to a session row; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SessionPatch {
    pub customer: Customer,
    pub status: Option<SessionStatus>,
    pub handler: Option<SessionHandler>,
    pub escalated_at: Option<DateTime<Utc>>,
    /// Rule name and time; only the first completion is kept.
    pub completion: Option<(String, DateTime<Utc>)>,
}

impl SessionPatch {
    pub fn is_empty(&self) -> bool {
        self.customer == Customer::default()
            && self.status.is_none()
            && self.handler.is_none()
            && self.escalated_at.is_none()
            && self.completion.is_none()
    }

    /// Folds a later patch into this one (later values win).
    pub fn merge(&mut self, later: SessionPatch) {
        self.customer.merge(later.customer);
        self.status = later.status.or(self.status);
        self.handler = later.handler.or(self.handler);
        self.escalated_at = later.escalated_at.or(self.escalated_at);
        if self.completion.is_none() {
            self.completion = later.completion;
        }
    }
}

/// A notification to deliver, written with its cause.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub event_type: &'static str,
    pub payload: Value,
    pub idempotency_key: String,
}

/// Everything one conversation needs written atomically.
#[derive(Debug, Clone)]
pub struct SessionWrite {
    pub session_id: SessionId,
    pub channel: Channel,
    pub create: Option<NewSessionRow>,
    pub messages: Vec<MessageRow>,
    pub patch: SessionPatch,
    pub outbox: Vec<OutboxRow>,
}

impl SessionWrite {
    /// Only a new session row (a channel conversation's first contact).
    pub fn create_only(session_id: SessionId, row: NewSessionRow) -> Self {
        Self {
            session_id,
            channel: row.channel,
            create: Some(row),
            messages: Vec::new(),
            patch: SessionPatch::default(),
            outbox: Vec::new(),
        }
    }


    /// Rows this write adds (messages, outbox rows, the session row): the
    /// unit of the persistence queue's bound.
    pub fn rows(&self) -> usize {
        self.messages.len() + self.outbox.len() + 1
    }
}

/// One transaction for the whole batch, in named steps: new session rows,
/// then all messages (one binary COPY) and the sessions' counters, then
/// each session's changes, then the outbox rows.
pub async fn write_batch(db: &Db, writes: &[SessionWrite]) -> Result<(), StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    insert_new_sessions(&tx, writes).await?;
    copy_messages(&tx, writes).await?;
    apply_session_patches(&tx, writes).await?;
    insert_outbox_rows(&tx, writes).await?;
    tx.commit().await?;
    Ok(())
}

/// The pool's transaction (it caches prepared statements per connection).
type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// The rows of conversations whose first message is in this batch.
async fn insert_new_sessions(tx: &Tx<'_>, writes: &[SessionWrite]) -> Result<(), StoreError> {
    let new: Vec<(&SessionWrite, &NewSessionRow)> = writes.iter().filter_map(|w| w.create.as_ref().map(|n| (w, n))).collect();
    if new.is_empty() {
        return Ok(());
    }
    // One statement for all of them: a burst of visitors writing their
    // first message costs one round trip, not one per conversation.
    let ids: Vec<Uuid> = new.iter().map(|(w, _)| w.session_id.0).collect();
    let channels: Vec<&str> = new.iter().map(|(_, n)| n.channel.as_str()).collect();
    let external_ids: Vec<Option<&str>> = new.iter().map(|(_, n)| n.external_id.as_deref()).collect();
    let site_ids: Vec<Option<Uuid>> = new.iter().map(|(_, n)| n.site_id).collect();
    let tokens: Vec<Option<&[u8]>> = new.iter().map(|(_, n)| n.visitor_token_hash.as_deref()).collect();
    let names: Vec<Option<&str>> = new.iter().map(|(_, n)| n.customer.name.as_deref()).collect();
    let emails: Vec<Option<&str>> = new.iter().map(|(_, n)| n.customer.email.as_deref()).collect();
    let phones: Vec<Option<&str>> = new.iter().map(|(_, n)| n.customer.phone.as_deref()).collect();
    let metadata: Vec<&Value> = new.iter().map(|(_, n)| &n.metadata).collect();
    let created: Vec<DateTime<Utc>> = new.iter().map(|(_, n)| n.created_at).collect();
    let statement = tx
        .prepare_cached(
            "INSERT INTO sessions (id, channel, external_id, site_id, visitor_token_hash,
                customer_name, customer_email, customer_phone, metadata, created_at, updated_at)
             SELECT id, channel, external_id, site_id, token, name, email, phone, metadata, created_at, created_at
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::bytea[], $6::text[], $7::text[],
                         $8::text[], $9::jsonb[], $10::timestamptz[])
                  AS u(id, channel, external_id, site_id, token, name, email, phone, metadata, created_at)",
        )
        .await?;
    tx.execute(&statement, &[&ids, &channels, &external_ids, &site_ids, &tokens, &names, &emails, &phones, &metadata, &created])
        .await?;
    Ok(())
}

/// Every message of the batch in one binary COPY, then each session's
/// `last_seq`/`last_message_at` in one `UPDATE … FROM unnest(…)`.
async fn copy_messages(tx: &Tx<'_>, writes: &[SessionWrite]) -> Result<(), StoreError> {
    let total: usize = writes.iter().map(|w| w.messages.len()).sum();
    if total > 0 {
        let mut session_ids = Vec::with_capacity(total);
        let mut seqs = Vec::with_capacity(total);
        let mut roles = Vec::with_capacity(total);
        let mut texts = Vec::with_capacity(total);
        let mut client_ids = Vec::with_capacity(total);
        let mut channels = Vec::with_capacity(total);
        let mut external_ids = Vec::with_capacity(total);
        let mut authors = Vec::with_capacity(total);
        let mut latencies = Vec::with_capacity(total);
        let mut times = Vec::with_capacity(total);
        let (mut counter_ids, mut last_seqs, mut last_times) = (Vec::new(), Vec::new(), Vec::new());
        for write in writes {
            for m in &write.messages {
                session_ids.push(write.session_id.0);
                seqs.push(m.seq);
                roles.push(m.role.as_str());
                texts.push(m.text.as_str());
                client_ids.push(m.client_msg_id.as_deref());
                channels.push(write.channel.as_str());
                external_ids.push(m.external_id.as_deref());
                authors.push(m.author_id);
                latencies.push(m.latency_ms);
                times.push(m.created_at);
            }
            if let Some(last) = write.messages.last() {
                counter_ids.push(write.session_id.0);
                last_seqs.push(last.seq);
                last_times.push(last.created_at);
            }
        }
        // Binary COPY is the fastest way into a table; the rows are ready.
        let sink = tx
            .copy_in(
                "COPY messages (session_id, seq, role, text, client_msg_id, channel, external_id,
                    author_id, latency_ms, created_at) FROM STDIN BINARY",
            )
            .await?;
        let writer = BinaryCopyInWriter::new(sink, &MESSAGE_COLUMNS);
        futures_util::pin_mut!(writer);
        for i in 0..total {
            writer
                .as_mut()
                .write(&[
                    &session_ids[i],
                    &seqs[i],
                    &roles[i],
                    &texts[i],
                    &client_ids[i],
                    &channels[i],
                    &external_ids[i],
                    &authors[i],
                    &latencies[i],
                    &times[i],
                ])
                .await?;
        }
        writer.finish().await?;
        let counters = tx
            .prepare_cached(
                "UPDATE sessions s SET last_seq = u.last_seq, last_message_at = u.last_at
                 FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS u(id, last_seq, last_at)
                 WHERE s.id = u.id",
            )
            .await?;
        tx.execute(&counters, &[&counter_ids, &last_seqs, &last_times]).await?;
    }
    Ok(())
}

/// Status, handler, customer and completion changes, and the fire count of
/// a completion rule that matched.
async fn apply_session_patches(tx: &Tx<'_>, writes: &[SessionWrite]) -> Result<(), StoreError> {
    for write in writes {
        let patch = &write.patch;
        if !patch.is_empty() {
            let statement = tx
                .prepare_cached(
                    "UPDATE sessions SET
                        customer_name = COALESCE($2, customer_name),
                        customer_email = COALESCE($3, customer_email),
                        customer_phone = COALESCE($4, customer_phone),
                        status = COALESCE($5, status),
                        handler = COALESCE($6, handler),
                        escalated_at = COALESCE($7, escalated_at),
                        completion_rule = COALESCE(completion_rule, $8),
                        completed_at = COALESCE(completed_at, $9),
                        updated_at = now()
                     WHERE id = $1",
                )
                .await?;
            let (rule, completed_at) = match &patch.completion {
                Some((rule, at)) => (Some(rule.as_str()), Some(*at)),
                None => (None, None),
            };
            tx.execute(
                &statement,
                &[
                    &write.session_id.0,
                    &patch.customer.name,
                    &patch.customer.email,
                    &patch.customer.phone,
                    &patch.status.map(|s| s.as_str()),
                    &patch.handler.map(|h| h.as_str()),
                    &patch.escalated_at,
                    &rule,
                    &completed_at,
                ],
            )
            .await?;
            if let Some(rule) = rule {
                tx.execute(
                    "UPDATE completion_rules SET fire_count = fire_count + 1, last_fired_at = now() WHERE name = $1",
                    &[&rule],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Notifications to deliver, committed with their cause (idempotency key
/// unique: a retried write queues nothing twice).
async fn insert_outbox_rows(tx: &Tx<'_>, writes: &[SessionWrite]) -> Result<(), StoreError> {
    for write in writes {
        for row in &write.outbox {
            let statement = tx
                .prepare_cached(
                    "INSERT INTO outbox (event_type, payload, idempotency_key, session_id)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING",
                )
                .await?;
            tx.execute(&statement, &[&row.event_type, &row.payload, &row.idempotency_key, &write.session_id.0])
                .await?;
        }
    }
    Ok(())
}
