//! Sessions as staff read them: the one summary row (`SessionSummary`, shown
//! by the API, the dashboard socket and exports), the list page, a
//! transcript page, the QA history and the export's row stream.

use std::collections::HashMap;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures_util::StreamExt;
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use super::session_filter::{Params, order_by, sort_key, where_clause_planned};
use super::session_search;
use crate::domain::listing::{Cursor, ListOrder, PageRequest, SessionFilter};
use crate::domain::{Completion, Customer, MessageRole, Seq, SessionId};
use crate::postgres::Db;
use crate::protocol::{MessageView, rfc3339, rfc3339_opt};

/// A session as the list, the dashboard socket and exports show it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub id: SessionId,
    pub channel: String,
    pub external_id: Option<String>,
    pub site: Option<String>,
    pub customer: Customer,
    pub status: String,
    pub handler: String,
    pub priority: String,
    pub assignee_id: Option<Uuid>,
    pub assignee: Option<String>,
    #[serde(with = "rfc3339_opt")]
    pub escalated_at: Option<DateTime<Utc>>,
    pub completion: Completion,
    pub completion_rule: Option<String>,
    #[serde(with = "rfc3339_opt")]
    pub completed_at: Option<DateTime<Utc>>,
    pub qa_status: String,
    pub qa_notes: Option<String>,
    pub qa_by: Option<String>,
    #[serde(with = "rfc3339_opt")]
    pub qa_at: Option<DateTime<Utc>>,
    pub dev_feedback: Option<String>,
    pub dev_feedback_by: Option<String>,
    #[serde(with = "rfc3339_opt")]
    pub dev_feedback_at: Option<DateTime<Utc>>,
    /// How many messages the conversation has. Seqs run 1, 2, 3… without
    /// gaps, so this is the stored `sessions.last_seq`.
    pub message_count: Seq,
    #[serde(with = "rfc3339_opt")]
    pub last_message_at: Option<DateTime<Utc>>,
    pub last_message_preview: Option<String>,
    /// Who wrote the last message (the dashboard alerts staff when a
    /// visitor writes in a conversation assigned to them).
    pub last_message_role: Option<String>,
    pub metadata: serde_json::Value,
    /// How far the visitor has read (staff and AI messages up to this seq).
    pub visitor_read_seq: Seq,
    /// How far staff have read, and who read last.
    pub staff_read_seq: Seq,
    pub staff_read_by: Option<String>,
    /// Visitor messages after `staff_read_seq`.
    pub unread: i64,
    /// The customer's rating (1–5) and comment, if they gave one.
    pub csat_score: Option<i16>,
    pub csat_comment: Option<String>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// Characters of the last message shown in lists.
const PREVIEW_CHARS: usize = 160;

const SUMMARY_SELECT: &str = "
    SELECT s.id, s.channel, s.external_id, st.key, s.customer_name, s.customer_email, s.customer_phone,
           s.status, s.handler, s.priority, s.assignee_id, ua.username, s.escalated_at,
           s.completed_at, s.completion_rule, s.qa_status, s.qa_notes, uq.username, s.qa_at,
           s.dev_feedback, ud.username, s.dev_feedback_at, s.last_seq, s.last_message_at,
           lm.text, s.metadata, s.created_at, s.updated_at, lm.role,
           s.visitor_read_seq, s.staff_read_seq, s.staff_read_by,
           (SELECT count(*) FROM messages mu WHERE mu.session_id = s.id AND mu.seq > s.staff_read_seq AND mu.role = 'visitor'),
           s.csat_score, s.csat_comment
    FROM sessions s
    LEFT JOIN sites st ON st.id = s.site_id
    LEFT JOIN users ua ON ua.id = s.assignee_id
    LEFT JOIN users uq ON uq.id = s.qa_by
    LEFT JOIN users ud ON ud.id = s.dev_feedback_by
    LEFT JOIN LATERAL (SELECT text, role FROM messages m WHERE m.session_id = s.id ORDER BY seq DESC LIMIT 1) lm ON true";

impl SessionSummary {
    fn from_row(row: &tokio_postgres::Row, inactive_after_hours: u32) -> Self {
        let created_at: DateTime<Utc> = row.get(26);
        let completed_at: Option<DateTime<Utc>> = row.get(13);
        let last_message_at: Option<DateTime<Utc>> = row.get(23);
        let preview: Option<String> = row.get(24);
        Self {
            id: SessionId(row.get(0)),
            channel: row.get(1),
            external_id: row.get(2),
            site: row.get(3),
            customer: Customer { name: row.get(4), email: row.get(5), phone: row.get(6) },
            status: row.get(7),
            handler: row.get(8),
            priority: row.get(9),
            assignee_id: row.get(10),
            assignee: row.get(11),
            escalated_at: row.get(12),
            completion: Completion::derive(completed_at, last_message_at.unwrap_or(created_at), Utc::now(), inactive_after_hours),
            completion_rule: row.get(14),
            completed_at,
            qa_status: row.get(15),
            qa_notes: row.get(16),
            qa_by: row.get(17),
            qa_at: row.get(18),
            dev_feedback: row.get(19),
            dev_feedback_by: row.get(20),
            dev_feedback_at: row.get(21),
            message_count: row.get(22),
            last_message_at,
            last_message_preview: preview.map(|p| p.chars().take(PREVIEW_CHARS).collect()),
            last_message_role: row.get(28),
            metadata: row.get(25),
            created_at,
            updated_at: row.get(27),
            visitor_read_seq: row.get(29),
            staff_read_seq: row.get(30),
            staff_read_by: row.get(31),
            unread: row.get(32),
            csat_score: row.get(33),
            csat_comment: row.get(34),
        }
    }
}

/// One page of the list, in the pagination shape every list shares.
#[derive(Debug, Serialize)]
pub struct SessionPage {
    pub sessions: Vec<SessionSummary>,
    pub total: i64,
    /// With a search for a common word: `true` when `total` is an estimate
    /// (see `session_search::count`).
    pub total_estimated: bool,
    pub page: i64,
    pub per_page: i64,
    /// Where the next page starts (keyset paging); `None` on the last page
    /// and for the escalation queue.
    pub next_cursor: Option<String>,
    /// With a search: per session of the page, its newest message whose
    /// words match (sessions found by a customer field may have none).
    pub matches: Vec<SearchMatch>,
}

/// A message a search found.
#[derive(Debug, Serialize)]
pub struct SearchMatch {
    pub session_id: Uuid,
    pub seq: Seq,
    pub text: String,
}

/// A page of the list: by `cursor` (keyset: the rows after it in the
/// list's order) or else by `page` (OFFSET, for existing clients).
pub async fn list(
    db: &Db,
    filter: &SessionFilter,
    page: PageRequest,
    cursor: Option<Cursor>,
    tz: Tz,
    inactive_after_hours: u32,
    search_index_max_matches: i64,
) -> Result<SessionPage, StoreError> {
    let found = session_search::find(db, filter, tz, inactive_after_hours, search_index_max_matches).await?;
    let mut params = Params::default();
    let condition = where_clause_planned(filter, inactive_after_hours, session_search::plan(&found), &mut params);
    let (after, offset) = match cursor {
        Some(cursor) => {
            let key = sort_key(filter.order);
            let (at, id) = (params.push(cursor.at), params.push(cursor.id));
            (format!(" AND ({key}, s.id) < ({at}, {id})"), params.push(0i64))
        }
        None => (String::new(), params.push(page.offset())),
    };
    let limit = params.push(page.per_page);
    let sql = format!("{SUMMARY_SELECT} WHERE {condition}{after} ORDER BY {} LIMIT {limit} OFFSET {offset}", order_by(filter.order));
    // The page and the count at once, each on its own connection (neither
    // holds one while waiting for another, so a busy pool cannot deadlock).
    let (counted, rows) = futures_util::try_join!(
        session_search::count(db, filter, found.as_ref(), tz, inactive_after_hours),
        async { db.get().await?.query(&sql, &params.refs()).await.map_err(StoreError::from) },
    )?;
    let sessions: Vec<SessionSummary> = rows.iter().map(|r| SessionSummary::from_row(r, inactive_after_hours)).collect();
    let next_cursor = sessions
        .last()
        .filter(|_| sessions.len() as i64 == page.per_page)
        .and_then(|last| {
            let at = if filter.order == ListOrder::Activity { last.last_message_at.unwrap_or(last.created_at) } else { last.created_at };
            Cursor::after(filter.order, at, last.id.0)
        })
        .map(|c| c.encode());
    let matches = match &filter.search {
        Some(search) => session_search::matches(db, &sessions.iter().map(|s| s.id.0).collect::<Vec<_>>(), search).await?,
        None => Vec::new(),
    };
    // An estimate is never below what the pages so far have shown.
    let shown = page.offset() + sessions.len() as i64;
    let total = if counted.estimated { counted.total.max(shown) } else { counted.total };
    Ok(SessionPage {
        sessions,
        total,
        total_estimated: counted.estimated,
        page: page.page,
        per_page: page.per_page,
        next_cursor,
        matches,
    })
}

/// Summaries of the given sessions (those that exist).
pub async fn summaries(db: &Db, ids: &[Uuid], inactive_after_hours: u32) -> Result<Vec<SessionSummary>, StoreError> {
    let rows = db.get().await?.query(&format!("{SUMMARY_SELECT} WHERE s.id = ANY($1)"), &[&ids]).await?;
    Ok(rows.iter().map(|r| SessionSummary::from_row(r, inactive_after_hours)).collect())
}

pub async fn summary(db: &Db, id: Uuid, inactive_after_hours: u32) -> Result<SessionSummary, StoreError> {
    summaries(db, &[id], inactive_after_hours).await?.pop().ok_or(StoreError::NotFound("session"))
}

/// Messages of a session with `seq > after`, at most `limit`, oldest first.
pub async fn messages(db: &Db, id: Uuid, after: Seq, limit: i64) -> Result<Vec<MessageView>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(
            &format!("SELECT {} FROM messages WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3", message_fields()),
            &[&id, &after, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| message_from_row(r, 0)).collect())
}

/// Those of `ids` that are stored sessions.
pub async fn existing(db: &Db, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
    let rows = db.get().await?.query("SELECT id FROM sessions WHERE id = ANY($1)", &[&ids]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The columns of a message object in a query over `messages`: `seq, role,
/// text, created_at`, the display name of its staff author, and its
/// attachments (six columns, read by `message_from_row`).
pub(super) fn message_fields() -> &'static str {
    static FIELDS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| {
        format!(
            "seq, role, text, created_at, (SELECT COALESCE(u.display_name, u.username) FROM users u WHERE u.id = messages.author_id), {}",
            super::attachments::OF_MESSAGE
        )
    })
}

/// A message from a row whose `message_fields` start at `first`.
pub(super) fn message_from_row(row: &tokio_postgres::Row, first: usize) -> MessageView {
    MessageView {
        seq: row.get(first),
        role: MessageRole::parse(row.get(first + 1)).unwrap_or(MessageRole::System),
        text: row.get(first + 2),
        created_at: row.get(first + 3),
        author: row.get(first + 4),
        attachments: super::attachments::from_json(row.get(first + 5)),
    }
}

/// Number of columns `message_fields` adds.
pub(super) const MESSAGE_FIELD_COUNT: usize = 6;

/// One QA status change.
#[derive(Debug, Serialize)]
pub struct QaChange {
    pub from_status: String,
    pub to_status: String,
    pub notes: Option<String>,
    pub by: String,
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
}

pub async fn qa_history(db: &Db, id: Uuid) -> Result<Vec<QaChange>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(
            "SELECT from_status, to_status, notes, username, created_at FROM qa_history WHERE session_id = $1 ORDER BY id",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| QaChange { from_status: r.get(0), to_status: r.get(1), notes: r.get(2), by: r.get(3), at: r.get(4) })
        .collect())
}

/// The filtered sessions, read from PostgreSQL as the caller takes them, so
/// memory stays flat however many match. The query has already run when
/// `export` returns: a failing query is an error before the first row.
pub struct SummaryStream {
    /// Held so the connection is not handed to anyone else while rows stream.
    _client: deadpool_postgres::Object,
    rows: Pin<Box<tokio_postgres::RowStream>>,
    inactive_after_hours: u32,
}

impl SummaryStream {
    pub async fn next(&mut self) -> Option<Result<SessionSummary, StoreError>> {
        let row = self.rows.next().await?;
        Some(row.map(|r| SessionSummary::from_row(&r, self.inactive_after_hours)).map_err(Into::into))
    }
}

/// The filtered sessions in the list's order, streamed; a search finds
/// them the way the list does (`session_search`).
pub async fn export(db: &Db, filter: &SessionFilter, tz: Tz, inactive_after_hours: u32, search_index_max_matches: i64) -> Result<SummaryStream, StoreError> {
    let found = session_search::find(db, filter, tz, inactive_after_hours, search_index_max_matches).await?;
    let mut params = Params::default();
    let condition = where_clause_planned(filter, inactive_after_hours, session_search::plan(&found), &mut params);
    let sql = format!("{SUMMARY_SELECT} WHERE {condition} ORDER BY {}", order_by(filter.order));
    let client = db.get().await?;
    let rows = client.query_raw(&sql, params.refs()).await?;
    Ok(SummaryStream { _client: client, rows: Box::pin(rows), inactive_after_hours })
}

/// Whole transcripts of many sessions at once (the export's `include=messages`),
/// on one connection held for the reader's life.
pub struct TranscriptReader(deadpool_postgres::Object);

impl TranscriptReader {
    pub async fn open(db: &Db) -> Result<Self, StoreError> {
        Ok(Self(db.get().await?))
    }

    pub async fn read(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<MessageView>>, StoreError> {
        let mut transcripts: HashMap<Uuid, Vec<MessageView>> = HashMap::new();
        let rows = self
            .0
            .query(
                &format!("SELECT session_id, {} FROM messages WHERE session_id = ANY($1) ORDER BY session_id, seq", message_fields()),
                &[&ids],
            )
            .await?;
        for row in rows {
            transcripts.entry(row.get(0)).or_default().push(message_from_row(&row, 1));
        }
        Ok(transcripts)
    }
}
