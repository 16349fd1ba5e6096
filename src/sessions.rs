//! Sessions as staff see them: the one place a session is rendered to JSON
//! (`SessionSummary`, used by the API, the dashboard socket and exports), the
//! list filters, and the queries behind the list, the detail view and stats.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::domain::{Channel, Completion, Customer, QaStatus, SessionId, SessionStatus};
use crate::error::ApiError;
use crate::postgres::Db;
use crate::protocol::{MessageView, rfc3339, rfc3339_opt};

/// Largest page a list request may ask for.
pub const MAX_PER_PAGE: i64 = 200;
const DEFAULT_PER_PAGE: i64 = 50;
/// Longest search text accepted.
const MAX_SEARCH_CHARS: usize = 200;

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
    pub message_count: i64,
    #[serde(with = "rfc3339_opt")]
    pub last_message_at: Option<DateTime<Utc>>,
    pub last_message_preview: Option<String>,
    pub metadata: serde_json::Value,
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
           lm.text, s.metadata, s.created_at, s.updated_at
    FROM sessions s
    LEFT JOIN sites st ON st.id = s.site_id
    LEFT JOIN users ua ON ua.id = s.assignee_id
    LEFT JOIN users uq ON uq.id = s.qa_by
    LEFT JOIN users ud ON ud.id = s.dev_feedback_by
    LEFT JOIN LATERAL (SELECT text FROM messages m WHERE m.session_id = s.id ORDER BY seq DESC LIMIT 1) lm ON true";

impl SessionSummary {
    pub fn from_row(row: &tokio_postgres::Row, inactive_after_hours: u32) -> Self {
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
            metadata: row.get(25),
            created_at,
            updated_at: row.get(27),
        }
    }
}

/// Query parameters of the list, stats and export.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// First day (YYYY-MM-DD in `TIMEZONE`) or an RFC 3339 instant.
    pub from: Option<String>,
    /// Last day, inclusive (YYYY-MM-DD in `TIMEZONE`) or an RFC 3339 instant (exclusive).
    pub to: Option<String>,
    pub channel: Option<String>,
    pub completion: Option<String>,
    pub qa_status: Option<String>,
    /// A status, or `all`. Without it archived sessions are left out.
    pub status: Option<String>,
    /// Text searched in the customer's name, email and phone and in the transcript.
    pub q: Option<String>,
    /// A site key.
    pub site: Option<String>,
    /// `created` (newest first, the default) or `activity` (latest message first).
    pub sort: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// The list's filters, parsed.
#[derive(Debug, Default)]
pub struct Filter {
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    channel: Option<Channel>,
    completion: Option<Completion>,
    qa_status: Option<QaStatus>,
    status: StatusFilter,
    search: Option<String>,
    site: Option<String>,
    by_activity: bool,
}

#[derive(Debug, Default)]
enum StatusFilter {
    #[default]
    NotArchived,
    All,
    Only(SessionStatus),
}

fn parse_enum<T>(value: &Option<String>, field: &'static str, parse: fn(&str) -> Option<T>, allowed: &str) -> Result<Option<T>, ApiError> {
    match value.as_deref().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse(v)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("invalid_filter", format!("{field} must be one of {allowed}"))),
    }
}

/// Midnight at the start of `day` in `tz`, as an instant.
pub fn start_of_day(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let local = day.and_time(NaiveTime::MIN);
    tz.from_local_datetime(&local)
        .earliest()
        // Midnight skipped by a DST jump: the day starts an hour later.
        .or_else(|| tz.from_local_datetime(&(local + chrono::Duration::hours(1))).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&local))
}

fn parse_bound(value: &Option<String>, field: &'static str, tz: Tz, end_of_day: bool) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else { return Ok(None) };
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let day = if end_of_day { day.succ_opt().unwrap_or(day) } else { day };
        return Ok(Some(start_of_day(day, tz)));
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| ApiError::invalid("invalid_filter", format!("{field} must be YYYY-MM-DD or an RFC 3339 time")))
}

impl Filter {
    pub fn parse(query: &ListQuery, tz: Tz) -> Result<Self, ApiError> {
        let status = match query.status.as_deref().filter(|v| !v.is_empty()) {
            None => StatusFilter::NotArchived,
            Some("all") => StatusFilter::All,
            Some(s) => StatusFilter::Only(SessionStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("invalid_filter", "status must be active, resolved, escalated, archived or all")
            })?),
        };
        // PostgreSQL text cannot hold NUL: such a filter matches nothing and is refused.
        if [&query.q, &query.site, &query.from, &query.to].iter().any(|v| v.as_deref().is_some_and(|v| v.contains('\0'))) {
            return Err(ApiError::invalid("invalid_filter", "filters must not contain NUL characters"));
        }
        let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_owned);
        if search.as_ref().is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS) {
            return Err(ApiError::invalid("invalid_filter", format!("q is longer than {MAX_SEARCH_CHARS} characters")));
        }
        let by_activity = match query.sort.as_deref() {
            None | Some("created") => false,
            Some("activity") => true,
            Some(_) => return Err(ApiError::invalid("invalid_filter", "sort must be created or activity")),
        };
        let filter = Self {
            from: parse_bound(&query.from, "from", tz, false)?,
            until: parse_bound(&query.to, "to", tz, true)?,
            channel: parse_enum(&query.channel, "channel", Channel::parse, "web, messenger, whatsapp, test")?,
            completion: parse_enum(&query.completion, "completion", Completion::parse, "complete, in_progress, incomplete")?,
            qa_status: parse_enum(&query.qa_status, "qa_status", QaStatus::parse, "unchecked, passed, issue, fixed")?,
            status,
            search,
            site: query.site.clone().filter(|s| !s.is_empty()),
            by_activity,
        };
        if let (Some(from), Some(until)) = (filter.from, filter.until) {
            if from >= until {
                return Err(ApiError::invalid("invalid_filter", "from must be before to"));
            }
        }
        Ok(filter)
    }

    /// The WHERE clause over `sessions s`, adding its values to `params`.
    fn where_clause(&self, inactive_after_hours: u32, params: &mut Params) -> String {
        // A widget opened but never written in leaves an empty session: it is
        // not a conversation, so lists, stats and exports leave it out.
        let mut clauses = vec!["s.last_seq > 0".to_owned()];
        if let Some(from) = self.from {
            clauses.push(format!("s.created_at >= {}", params.push(from)));
        }
        if let Some(until) = self.until {
            clauses.push(format!("s.created_at < {}", params.push(until)));
        }
        if let Some(channel) = self.channel {
            clauses.push(format!("s.channel = {}", params.push(channel.as_str().to_owned())));
        }
        if let Some(qa) = self.qa_status {
            clauses.push(format!("s.qa_status = {}", params.push(qa.as_str().to_owned())));
        }
        match &self.status {
            StatusFilter::NotArchived => clauses.push("s.status <> 'archived'".into()),
            StatusFilter::All => {}
            StatusFilter::Only(status) => clauses.push(format!("s.status = {}", params.push(status.as_str().to_owned()))),
        }
        if let Some(completion) = self.completion {
            let cutoff = params.push(Utc::now() - chrono::Duration::hours(inactive_after_hours.into()));
            clauses.push(match completion {
                Completion::Complete => "s.completed_at IS NOT NULL".into(),
                Completion::InProgress => format!("s.completed_at IS NULL AND COALESCE(s.last_message_at, s.created_at) > {cutoff}"),
                Completion::Incomplete => format!("s.completed_at IS NULL AND COALESCE(s.last_message_at, s.created_at) <= {cutoff}"),
            });
        }
        if let Some(site) = &self.site {
            clauses.push(format!("s.site_id = (SELECT id FROM sites WHERE key = {})", params.push(site.clone())));
        }
        if let Some(search) = &self.search {
            let pattern = params.push(format!("%{}%", escape_like(search)));
            clauses.push(format!(
                "(s.customer_name ILIKE {pattern} OR s.customer_email ILIKE {pattern} OR s.customer_phone ILIKE {pattern}
                  OR s.external_id ILIKE {pattern}
                  OR EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id AND m.text ILIKE {pattern}))"
            ));
        }
        clauses.join(" AND ")
    }

    fn order_by(&self) -> &'static str {
        if self.by_activity {
            "COALESCE(s.last_message_at, s.created_at) DESC, s.id DESC"
        } else {
            "s.created_at DESC, s.id DESC"
        }
    }
}

/// `%`, `_` and `\` in search text match themselves.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Positional SQL parameters built up alongside a query.
#[derive(Default)]
pub struct Params(Vec<Box<dyn ToSql + Sync + Send>>);

impl Params {
    /// Adds a value; returns its placeholder (`$n`).
    pub fn push<T: ToSql + Sync + Send + 'static>(&mut self, value: T) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
    }
}

/// One page of the list.
#[derive(Debug, Serialize)]
pub struct SessionPage {
    pub sessions: Vec<SessionSummary>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

pub fn page_params(page: Option<i64>, per_page: Option<i64>) -> Result<(i64, i64), ApiError> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE);
    if page < 1 {
        return Err(ApiError::invalid("invalid_page", "page starts at 1"));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::invalid("invalid_page", format!("per_page must be 1 to {MAX_PER_PAGE}")));
    }
    // The offset, (page - 1) × per_page, must fit PostgreSQL's bigint.
    if (page - 1).checked_mul(per_page).is_none() {
        return Err(ApiError::invalid("invalid_page", "page is too large"));
    }
    Ok((page, per_page))
}

pub async fn list(db: &Db, filter: &Filter, page: i64, per_page: i64, inactive_after_hours: u32) -> Result<SessionPage, ApiError> {
    let mut params = Params::default();
    let condition = filter.where_clause(inactive_after_hours, &mut params);
    let client = db.get().await?;
    let total: i64 = client
        .query_one(&format!("SELECT count(*) FROM sessions s WHERE {condition}"), &params.refs())
        .await?
        .get(0);
    let limit = params.push(per_page);
    let offset = params.push((page - 1) * per_page);
    let sql = format!("{SUMMARY_SELECT} WHERE {condition} ORDER BY {} LIMIT {limit} OFFSET {offset}", filter.order_by());
    let rows = client.query(&sql, &params.refs()).await?;
    Ok(SessionPage {
        sessions: rows.iter().map(|r| SessionSummary::from_row(r, inactive_after_hours)).collect(),
        total,
        page,
        per_page,
    })
}

/// Summaries of the given sessions (those that exist).
pub async fn summaries(db: &Db, ids: &[Uuid], inactive_after_hours: u32) -> anyhow::Result<Vec<SessionSummary>> {
    let rows = db
        .get()
        .await?
        .query(&format!("{SUMMARY_SELECT} WHERE s.id = ANY($1)"), &[&ids])
        .await?;
    Ok(rows.iter().map(|r| SessionSummary::from_row(r, inactive_after_hours)).collect())
}

pub async fn summary(db: &Db, id: Uuid, inactive_after_hours: u32) -> Result<SessionSummary, ApiError> {
    summaries(db, &[id], inactive_after_hours)
        .await?
        .pop()
        .ok_or(ApiError::NotFound("session"))
}

/// Messages of a session with `seq > after`, at most `limit`.
pub async fn messages(db: &Db, id: Uuid, after: i64, limit: i64) -> Result<Vec<MessageView>, ApiError> {
    let rows = db
        .get()
        .await?
        .query(
            "SELECT seq, role, text, created_at FROM messages WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&id, &after, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| message_from_row(r, 0)).collect())
}

/// A message from a row whose columns `seq, role, text, created_at` start at `first`.
pub fn message_from_row(row: &tokio_postgres::Row, first: usize) -> MessageView {
    MessageView {
        seq: row.get(first),
        role: crate::domain::MessageRole::parse(row.get(first + 1)).unwrap_or(crate::domain::MessageRole::System),
        text: row.get(first + 2),
        created_at: row.get(first + 3),
    }
}

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

pub async fn qa_history(db: &Db, id: Uuid) -> Result<Vec<QaChange>, ApiError> {
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

/// The dashboard's numbers.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub total: i64,
    pub by_completion: serde_json::Map<String, serde_json::Value>,
    pub by_qa_status: serde_json::Map<String, serde_json::Value>,
    pub by_channel: serde_json::Map<String, serde_json::Value>,
    pub by_status: serde_json::Map<String, serde_json::Value>,
    /// Sessions created and sessions completed per day, days in `TIMEZONE`.
    pub per_day: Vec<DayCount>,
    pub completion_rate: f64,
    pub ai_response_ms: Percentile,
    pub messages_per_session: f64,
    pub open_escalations: i64,
    pub timezone: String,
}

#[derive(Debug, Serialize)]
pub struct DayCount {
    pub day: String,
    pub sessions: i64,
    pub completions: i64,
}

#[derive(Debug, Serialize)]
pub struct Percentile {
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

pub async fn stats(db: &Db, filter: &Filter, tz: Tz, inactive_after_hours: u32) -> Result<Stats, ApiError> {
    // Each statement gets its own parameter list: the filter's, then its own.
    let scoped = || {
        let mut params = Params::default();
        let condition = filter.where_clause(inactive_after_hours, &mut params);
        (condition, params)
    };
    let client = db.get().await?;
    let counts = |rows: Vec<tokio_postgres::Row>, keys: &[&str]| {
        let mut map = serde_json::Map::new();
        for key in keys {
            map.insert((*key).to_owned(), 0.into());
        }
        for row in rows {
            map.insert(row.get::<_, String>(0), row.get::<_, i64>(1).into());
        }
        map
    };
    let grouped = async |column: &str, keys: &[&str]| -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        let (condition, params) = scoped();
        let sql = format!("SELECT {column}, count(*) FROM sessions s WHERE {condition} GROUP BY 1");
        Ok(counts(client.query(&sql, &params.refs()).await?, keys))
    };
    let by_qa_status = grouped("s.qa_status", &["unchecked", "passed", "issue", "fixed"]).await?;
    let by_channel = grouped("s.channel", &["web", "messenger", "whatsapp", "test"]).await?;
    let by_status = grouped("s.status", &["active", "resolved", "escalated", "archived"]).await?;

    let (condition, mut params) = scoped();
    let cutoff = params.push(Utc::now() - chrono::Duration::hours(inactive_after_hours.into()));
    let completion_sql = format!(
        "SELECT CASE WHEN s.completed_at IS NOT NULL THEN 'complete'
                     WHEN COALESCE(s.last_message_at, s.created_at) > {cutoff} THEN 'in_progress'
                     ELSE 'incomplete' END, count(*)
         FROM sessions s WHERE {condition} GROUP BY 1"
    );
    let by_completion = counts(client.query(&completion_sql, &params.refs()).await?, &["complete", "in_progress", "incomplete"]);

    let (condition, mut params) = scoped();
    let zone = params.push(tz.name().to_owned());
    let per_day_sql = format!(
        "WITH scoped AS (SELECT s.created_at, s.completed_at FROM sessions s WHERE {condition}),
         created AS (SELECT to_char(created_at AT TIME ZONE {zone}::text, 'YYYY-MM-DD') AS day, count(*) AS n
                     FROM scoped GROUP BY 1),
         completed AS (SELECT to_char(completed_at AT TIME ZONE {zone}::text, 'YYYY-MM-DD') AS day, count(*) AS n
                       FROM scoped WHERE completed_at IS NOT NULL GROUP BY 1)
         SELECT COALESCE(c.day, d.day), COALESCE(c.n, 0), COALESCE(d.n, 0)
         FROM created c FULL JOIN completed d ON d.day = c.day ORDER BY 1"
    );
    let per_day = client
        .query(&per_day_sql, &params.refs())
        .await?
        .iter()
        .map(|r| DayCount { day: r.get(0), sessions: r.get(1), completions: r.get(2) })
        .collect();

    let (condition, params) = scoped();
    let latency = client
        .query_one(
            &format!(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY m.latency_ms),
                        percentile_cont(0.9) WITHIN GROUP (ORDER BY m.latency_ms)
                 FROM messages m JOIN sessions s ON s.id = m.session_id
                 WHERE m.role = 'ai' AND m.latency_ms IS NOT NULL AND {condition}"
            ),
            &params.refs(),
        )
        .await?;
    let (condition, params) = scoped();
    let totals = client
        .query_one(
            &format!("SELECT count(*), COALESCE(avg(s.last_seq), 0)::float8 FROM sessions s WHERE {condition}"),
            &params.refs(),
        )
        .await?;
    let open_escalations: i64 = client.query_one("SELECT count(*) FROM sessions WHERE status = 'escalated'", &[]).await?.get(0);
    let total: i64 = totals.get(0);
    let complete = by_completion.get("complete").and_then(|v| v.as_i64()).unwrap_or(0);
    Ok(Stats {
        total,
        completion_rate: if total > 0 { complete as f64 / total as f64 } else { 0.0 },
        by_completion,
        by_qa_status,
        by_channel,
        by_status,
        per_day,
        ai_response_ms: Percentile { median: latency.get(0), p90: latency.get(1) },
        messages_per_session: totals.get(1),
        open_escalations,
        timezone: tz.name().to_owned(),
    })
}

/// The export's rows, streamed from a cursor-like row stream.
pub async fn export_rows(
    db: &Db,
    filter: &Filter,
    inactive_after_hours: u32,
) -> Result<(deadpool_postgres::Object, String, Params), ApiError> {
    let mut params = Params::default();
    let condition = filter.where_clause(inactive_after_hours, &mut params);
    let sql = format!("{SUMMARY_SELECT} WHERE {condition} ORDER BY {}", filter.order_by());
    Ok((db.get().await?, sql, params))
}
