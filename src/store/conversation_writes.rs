//! Conversation writes: what one conversation needs stored atomically
//! (`SessionWrite`: a new session row, messages, session changes, outbox
//! rows) and `write_batch`, which stores many of them in one transaction:
//! new sessions in one multi-row INSERT, the messages and the sessions'
//! counters (a small batch in one pipelined round trip, a big one by binary
//! COPY), then each session's changes and outbox rows. This is the only place session rows are created.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::StoreError;
use super::session_words;
use super::stats_rollups::{REPLY_COUNTS_UPSERT, ReplyCounts};
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
    pub visitor_token_hash: Option<[u8; 32]>,
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
    /// Files it carries, bound to it in the same transaction.
    pub attachment_ids: Vec<Uuid>,
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
    /// A staff member who replied: assigned if the session is an escalation
    /// nobody is assigned to.
    pub assign_if_unassigned: Option<Uuid>,
    /// A Messenger/WhatsApp customer's rating, given by replying 1–5.
    pub csat: Option<crate::domain::Csat>,
    /// The customer was asked for a rating (with this message).
    pub csat_asked: bool,
}

impl SessionPatch {
    pub fn is_empty(&self) -> bool {
        self.customer == Customer::default()
            && self.status.is_none()
            && self.handler.is_none()
            && self.escalated_at.is_none()
            && self.completion.is_none()
            && self.assign_if_unassigned.is_none()
            && self.csat.is_none()
            && !self.csat_asked
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
        self.assign_if_unassigned = self.assign_if_unassigned.or(later.assign_if_unassigned);
        self.csat = later.csat.or(self.csat.take());
        self.csat_asked |= later.csat_asked;
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
    /// The fencing number of this node's lease on the conversation (several
    /// nodes); the write commits only while that lease is still current.
    pub fence: Option<i64>,
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
            fence: None,
        }
    }


    /// Rows this write adds (messages, outbox rows, the session row): the
    /// unit of the persistence queue's bound.
    pub fn rows(&self) -> usize {
        self.messages.len() + self.outbox.len() + 1
    }
}

/// One transaction for the whole batch, in named steps: new session rows,
/// then all messages and the sessions' counters (`store_messages`), then
/// each session's changes, then the outbox rows.
///
/// A batch of new messages and nothing else (the usual case: no new
/// session, fence, patch, attachment or outbox row, and small) is sent as one
/// pipeline, BEGIN and COMMIT included, and answered in one round trip
/// instead of three (`store_small_batch`).
pub async fn write_batch(db: &Db, writes: &[SessionWrite], tz: Tz) -> Result<(), StoreError> {
    let mut client = db.get().await?;
    if only_few_messages(writes) {
        let columns = MessageColumns::of(writes);
        return store_small_batch(&client, writes, &columns, tz, true).await;
    }
    let tx = client.transaction().await?;
    check_fences(&tx, writes).await?;
    insert_new_sessions(&tx, writes).await?;
    store_messages(&tx, writes, tz).await?;
    bind_attachments(&tx, writes).await?;
    apply_session_patches(&tx, writes).await?;
    insert_outbox_rows(&tx, writes).await?;
    tx.commit().await?;
    Ok(())
}

/// Files sent with the batch's messages now belong to them (one statement
/// per message that carries any; most carry none).
async fn bind_attachments(tx: &Tx<'_>, writes: &[SessionWrite]) -> Result<(), StoreError> {
    for write in writes {
        for message in write.messages.iter().filter(|m| !m.attachment_ids.is_empty()) {
            super::attachments::bind(tx, write.session_id.0, message.seq, &message.attachment_ids).await?;
        }
    }
    Ok(())
}

/// The pool's transaction (it caches prepared statements per connection).
type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// Several nodes: every fenced write's lease must still carry its fencing
/// number. The lease rows are locked `FOR SHARE` until COMMIT, so a takeover
/// (which updates them) waits for this transaction and every write after
/// the takeover fails here: a node that lost a conversation cannot write.
async fn check_fences(tx: &Tx<'_>, writes: &[SessionWrite]) -> Result<(), StoreError> {
    let fenced: Vec<(Uuid, i64)> = writes.iter().filter_map(|w| w.fence.map(|f| (w.session_id.0, f))).collect();
    if fenced.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = fenced.iter().map(|(id, _)| *id).collect();
    let statement = tx
        .prepare_cached("SELECT session_id, fence FROM conversation_leases WHERE session_id = ANY($1) FOR SHARE")
        .await?;
    let current: std::collections::HashMap<Uuid, i64> =
        tx.query(&statement, &[&ids]).await?.iter().map(|r| (r.get(0), r.get(1))).collect();
    let lost: Vec<Uuid> = fenced.iter().filter(|(id, fence)| current.get(id) != Some(fence)).map(|(id, _)| *id).collect();
    if lost.is_empty() { Ok(()) } else { Err(StoreError::Fenced(lost)) }
}

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
    let tokens: Vec<Option<&[u8]>> = new.iter().map(|(_, n)| n.visitor_token_hash.as_ref().map(|h| h.as_slice())).collect();
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
    // Their words' row, which the messages below fill.
    tx.execute(&tx.prepare_cached(session_words::CREATE).await?, &[&ids]).await?;
    Ok(())
}

/// The batch's messages, column by column.
struct MessageColumns<'a> {
    session_ids: Vec<Uuid>,
    seqs: Vec<Seq>,
    roles: Vec<&'a str>,
    texts: Vec<&'a str>,
    client_ids: Vec<Option<&'a str>>,
    channels: Vec<&'a str>,
    external_ids: Vec<Option<&'a str>>,
    authors: Vec<Option<Uuid>>,
    latencies: Vec<Option<i32>>,
    times: Vec<DateTime<Utc>>,
}

impl<'a> MessageColumns<'a> {
    fn of(writes: &'a [SessionWrite]) -> Self {
        let rows = writes.iter().flat_map(|w| w.messages.iter().map(move |m| (w, m)));
        Self {
            session_ids: rows.clone().map(|(w, _)| w.session_id.0).collect(),
            seqs: rows.clone().map(|(_, m)| m.seq).collect(),
            roles: rows.clone().map(|(_, m)| m.role.as_str()).collect(),
            texts: rows.clone().map(|(_, m)| m.text.as_str()).collect(),
            client_ids: rows.clone().map(|(_, m)| m.client_msg_id.as_deref()).collect(),
            channels: rows.clone().map(|(w, _)| w.channel.as_str()).collect(),
            external_ids: rows.clone().map(|(_, m)| m.external_id.as_deref()).collect(),
            authors: rows.clone().map(|(_, m)| m.author_id).collect(),
            latencies: rows.clone().map(|(_, m)| m.latency_ms).collect(),
            times: rows.map(|(_, m)| m.created_at).collect(),
        }
    }

    fn len(&self) -> usize {
        self.seqs.len()
    }

    /// (time, channel, latency) of the AI replies that carry a latency.
    fn ai_latencies(&self) -> impl Iterator<Item = (DateTime<Utc>, &'a str, i32)> + '_ {
        (0..self.len())
            .filter(|&i| self.roles[i] == MessageRole::Ai.as_str())
            .filter_map(|i| self.latencies[i].map(|ms| (self.times[i], self.channels[i], ms)))
    }

    /// The whole columns, as the arrays of `MESSAGES_INSERT`.
    fn arrays(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.session_ids,
            &self.seqs,
            &self.roles,
            &self.texts,
            &self.client_ids,
            &self.channels,
            &self.external_ids,
            &self.authors,
            &self.latencies,
            &self.times,
        ]
    }

    /// Row `i` in the column order of `messages`' INSERT and COPY.
    fn row(&self, i: usize) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.session_ids[i],
            &self.seqs[i],
            &self.roles[i],
            &self.texts[i],
            &self.client_ids[i],
            &self.channels[i],
            &self.external_ids[i],
            &self.authors[i],
            &self.latencies[i],
            &self.times[i],
        ]
    }
}

/// Batches of up to this many messages (from at most `FEW_SESSIONS`
/// sessions) are written in one round trip; larger ones by binary COPY.
const SMALL_BATCH: usize = 64;
/// Sessions per batch up to which counters are updated one by one.
const FEW_SESSIONS: usize = 32;

const MESSAGES_INSERT: &str = "INSERT INTO messages (session_id, seq, role, text, client_msg_id, channel, external_id,
        author_id, latency_ms, created_at)
     SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                          $7::text[], $8::uuid[], $9::int4[], $10::timestamptz[])";
/// A session's counters after a batch: `last_seq` exactly, and
/// `last_message_at` only once the new message is `ACTIVITY_GRAIN` (a
/// second) past the stored one, so it is never later than the last message
/// and never more than a second earlier. Most updates then change no
/// indexed column (the activity index covers `last_message_at`; nothing
/// covers `last_seq`), and PostgreSQL writes them heap-only (HOT) instead of
/// adding an entry to each of the table's sixteen indexes (V19). The stats
/// rollups allow for the grain when they look for changed sessions.
const COUNTER_UPDATE: &str = "UPDATE sessions SET last_seq = $2,
        last_message_at = CASE WHEN last_message_at IS NULL OR $3 >= last_message_at + interval '1 second' THEN $3 ELSE last_message_at END
     WHERE id = $1";
/// `COUNTER_UPDATE` for a big batch.
const COUNTERS_UPDATE: &str = "UPDATE sessions s SET last_seq = u.last_seq,
        last_message_at = CASE WHEN s.last_message_at IS NULL OR u.last_at >= s.last_message_at + interval '1 second' THEN u.last_at ELSE s.last_message_at END
     FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS u(id, last_seq, last_at)
     WHERE s.id = u.id";
/// How far behind its last message a session's `last_message_at` may be.
pub const ACTIVITY_GRAIN: chrono::Duration = chrono::Duration::seconds(1);

/// Every message of the batch, then each session's `last_seq` and
/// `last_message_at` (`COUNTER_UPDATE`), and its words (`session_words`).
///
/// A small batch (the usual case below thousands of messages a second) is
/// `store_small_batch`: one INSERT and a primary-key UPDATE per session,
/// sent together and answered in one round trip: on a core shared with
/// PostgreSQL each round trip is two context switches. A big one is a
/// binary COPY (the fastest way into a table) and one `UPDATE … FROM
/// unnest(…)`. (That statement is planned once per connection for an
/// unknown array length, as a hash join over a sequential scan of
/// `sessions`: cheap per row in a big batch, but measured as PostgreSQL's
/// largest cost at 1k msg/s, where batches hold a few rows.)
async fn store_messages(tx: &Tx<'_>, writes: &[SessionWrite], tz: Tz) -> Result<(), StoreError> {
    let columns = MessageColumns::of(writes);
    if columns.len() == 0 {
        return Ok(());
    }
    if fits_one_pipeline(writes) {
        return store_small_batch(tx, writes, &columns, tz, false).await;
    }
    let replies = reply_counts(tx, tz, &columns).await?;
    let last = last_messages(writes);
    let sink = tx
        .copy_in(
            "COPY messages (session_id, seq, role, text, client_msg_id, channel, external_id,
                author_id, latency_ms, created_at) FROM STDIN BINARY",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &MESSAGE_COLUMNS);
    futures_util::pin_mut!(writer);
    for i in 0..columns.len() {
        writer.as_mut().write(&columns.row(i)).await?;
    }
    writer.finish().await?;
    let ids: Vec<Uuid> = last.iter().map(|l| l.0).collect();
    let seqs: Vec<Seq> = last.iter().map(|l| l.1).collect();
    let times: Vec<DateTime<Utc>> = last.iter().map(|l| l.2).collect();
    let counters = tx.prepare_cached(COUNTERS_UPDATE).await?;
    tx.execute(&counters, &[&ids, &seqs, &times]).await?;
    let add_words = tx.prepare_cached(session_words::ADD_MANY).await?;
    tx.execute(&add_words, &[&columns.session_ids, &columns.texts]).await?;
    if let Some((statement, counts)) = &replies {
        tx.execute(statement, &counts.params()).await?;
    }
    Ok(())
}

/// Whether the batch's messages are few enough for `store_small_batch`.
fn fits_one_pipeline(writes: &[SessionWrite]) -> bool {
    let messages: usize = writes.iter().map(|w| w.messages.len()).sum();
    (1..=SMALL_BATCH).contains(&messages) && writes.iter().filter(|w| !w.messages.is_empty()).count() <= FEW_SESSIONS
}

/// Whether the batch is only new messages, few enough for one round trip.
fn only_few_messages(writes: &[SessionWrite]) -> bool {
    fits_one_pipeline(writes)
        && writes.iter().all(|w| {
            w.create.is_none()
                && w.fence.is_none()
                && w.patch.is_empty()
                && w.outbox.is_empty()
                && w.messages.iter().all(|m| m.attachment_ids.is_empty())
        })
}

/// The small form of `store_messages`: one INSERT, a primary-key UPDATE per
/// session and a words UPDATE per session, sent as one pipeline. With
/// `own_transaction`, BEGIN and COMMIT go in the same pipeline: every
/// statement is queued on the connection at the first poll, so even a
/// caller that stops waiting leaves the connection out of the transaction.
/// A statement that fails aborts the transaction, which turns the COMMIT
/// into a rollback; its error is returned.
async fn store_small_batch<C>(client: &C, writes: &[SessionWrite], columns: &MessageColumns<'_>, tz: Tz, own_transaction: bool) -> Result<(), StoreError>
where
    C: deadpool_postgres::GenericClient + Sync,
{
    type Pending<'f> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'f>>;
    let replies = reply_counts(client, tz, columns).await?;
    let reply_params = replies.as_ref().map(|(statement, counts)| (statement, counts.params()));
    let insert = client.prepare_cached(MESSAGES_INSERT).await?;
    let counters = client.prepare_cached(COUNTER_UPDATE).await?;
    let add_words = client.prepare_cached(session_words::ADD_ONE).await?;
    let arrays = columns.arrays();
    let last = last_messages(writes);
    let counter_params: Vec<[&(dyn ToSql + Sync); 3]> = last.iter().map(|(id, seq, at)| [id as _, seq as _, at as _]).collect();
    // One session's new text; borrowed when it is one message (the usual case).
    let texts: Vec<(Uuid, std::borrow::Cow<str>)> = writes
        .iter()
        .filter_map(|w| match w.messages.as_slice() {
            [] => None,
            [one] => Some((w.session_id.0, one.text.as_str().into())),
            many => Some((w.session_id.0, many.iter().map(|m| m.text.as_str()).collect::<Vec<_>>().join(" ").into())),
        })
        .collect();
    let words_params: Vec<[&(dyn ToSql + Sync); 2]> = texts.iter().map(|(id, text)| [id as _, text as _]).collect();
    let framing = |sql: &'static str| -> Pending<'_> { Box::pin(async move { client.batch_execute(sql).await.map(|()| 0) }) };
    let mut statements: Vec<Pending<'_>> = Vec::with_capacity(4 + 2 * last.len());
    if own_transaction {
        statements.push(framing("BEGIN"));
    }
    statements.push(Box::pin(client.execute(&insert, &arrays)));
    // Counters before words: the order `session_words::backfill` locks in.
    statements.extend(counter_params.iter().map(|p| -> Pending<'_> { Box::pin(client.execute(&counters, p)) }));
    statements.extend(words_params.iter().map(|p| -> Pending<'_> { Box::pin(client.execute(&add_words, p)) }));
    if let Some((statement, params)) = &reply_params {
        statements.push(Box::pin(client.execute(*statement, params)));
    }
    if own_transaction {
        statements.push(framing("COMMIT"));
    }
    in_order(statements).await
}

/// The AI's response times among the batch's messages, counted for the
/// stats with the replies (`None`: no AI reply), with their statement.
async fn reply_counts<C>(client: &C, tz: Tz, columns: &MessageColumns<'_>) -> Result<Option<(tokio_postgres::Statement, ReplyCounts)>, StoreError>
where
    C: deadpool_postgres::GenericClient + Sync,
{
    match ReplyCounts::of(tz, columns.ai_latencies()) {
        Some(counts) => Ok(Some((client.prepare_cached(REPLY_COUNTS_UPSERT).await?, counts))),
        None => Ok(None),
    }
}

/// Each session's last new message: its id, seq and time.
fn last_messages(writes: &[SessionWrite]) -> Vec<(Uuid, Seq, DateTime<Utc>)> {
    writes.iter().filter_map(|w| w.messages.last().map(|m| (w.session_id.0, m.seq, m.created_at))).collect()
}

/// Runs statements of one transaction as a pipeline: each is sent when first
/// polled, and they are first polled in order, so PostgreSQL runs them in
/// order and the answers come back in one round trip. Waits for all of them
/// (a failed one aborts the transaction, so the rest fail too) and returns
/// the first failure.
async fn in_order<F>(statements: Vec<F>) -> Result<(), StoreError>
where
    F: std::future::Future<Output = Result<u64, tokio_postgres::Error>>,
{
    let mut pending: Vec<Option<std::pin::Pin<Box<F>>>> = statements.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut failure = None;
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for slot in pending.iter_mut() {
            if let Some(statement) = slot {
                match statement.as_mut().poll(cx) {
                    std::task::Poll::Ready(outcome) => {
                        if let Err(e) = outcome {
                            failure.get_or_insert(e);
                        }
                        *slot = None;
                    }
                    std::task::Poll::Pending => waiting = true,
                }
            }
        }
        if waiting { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    failure.map_or(Ok(()), |e| Err(e.into()))
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
                        assignee_id = CASE WHEN assignee_id IS NULL AND COALESCE($5, status) = 'escalated' THEN $10 ELSE assignee_id END,
                        csat_score = COALESCE($11, csat_score),
                        csat_comment = CASE WHEN $11::smallint IS NULL THEN csat_comment ELSE $12 END,
                        csat_at = CASE WHEN $11::smallint IS NULL THEN csat_at ELSE COALESCE(csat_at, now()) END,
                        csat_asked_at = CASE WHEN $13 THEN COALESCE(csat_asked_at, now()) ELSE csat_asked_at END,
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
                    &patch.assign_if_unassigned,
                    &patch.csat.as_ref().map(|c| c.score),
                    &patch.csat.as_ref().and_then(|c| c.comment.clone()),
                    &patch.csat_asked,
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
