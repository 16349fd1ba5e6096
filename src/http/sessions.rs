//! `/api/sessions…` (also answering as `/api/messenger-sessions…`): list,
//! detail, status/priority/assignee, QA, developer feedback, delete, bulk,
//! stats, export, escalations, claim, takeover and staff replies. Changes
//! reach the live conversation actor (status frames, takeover) and the
//! dashboards (`session` frames) through the hub.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use bytes::Bytes;
use chrono::Utc;
use futures_util::{StreamExt, pin_mut};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::ApiError;
use crate::auth::access::Principal;
use crate::auth::staff_sessions::StaffUser;
use crate::domain::{ChatText, ClientMsgId, QaStatus, SessionId, SessionStatus};
use crate::domain::role::DEVELOPERS;
use crate::sessions::{self, Filter, ListQuery, SessionSummary};
use crate::state::AppState;

/// Most ids one bulk request may name.
const MAX_BULK_IDS: usize = 500;
/// Longest QA notes or developer feedback.
const MAX_NOTES_CHARS: usize = 10_000;
/// Messages per page of a transcript.
const DEFAULT_TRANSCRIPT_PAGE: i64 = 500;
const MAX_TRANSCRIPT_PAGE: i64 = 1000;
/// Export rows buffered ahead of the client (bounds memory per export).
const EXPORT_BUFFER: usize = 32;
/// Sessions whose messages are fetched together during an export.
const EXPORT_CHUNK: usize = 200;

pub async fn list(query: web::Query<ListQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let filter = Filter::parse(&query, state.config.timezone)?;
    let (page, per_page) = sessions::page_params(query.page, query.per_page)?;
    let page = sessions::list(&state.db, &filter, page, per_page, state.config.inactive_after_hours).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Deserialize)]
pub struct TranscriptQuery {
    after_seq: Option<i64>,
    limit: Option<i64>,
}

pub async fn detail(
    id: web::Path<Uuid>,
    query: web::Query<TranscriptQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let after = query.after_seq.unwrap_or(0);
    let limit = query.limit.unwrap_or(DEFAULT_TRANSCRIPT_PAGE);
    if after < 0 || !(1..=MAX_TRANSCRIPT_PAGE).contains(&limit) {
        return Err(ApiError::invalid("invalid_page", format!("after_seq ≥ 0 and limit 1 to {MAX_TRANSCRIPT_PAGE}")));
    }
    let session = sessions::summary(&state.db, *id, state.config.inactive_after_hours).await?;
    let messages = sessions::messages(&state.db, *id, after, limit).await?;
    let next_after_seq = (messages.len() as i64 == limit).then(|| messages.last().map(|m| m.seq)).flatten();
    let qa_history = sessions::qa_history(&state.db, *id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "session": session,
        "messages": messages,
        "next_after_seq": next_after_seq,
        "qa_history": qa_history,
    })))
}

/// `PUT /api/sessions/{id}`: any subset of the fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    status: Option<String>,
    priority: Option<String>,
    /// A user id, or `null` to unassign.
    #[serde(default, with = "super::nullable")]
    assignee_id: Option<Option<Uuid>>,
}

const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];

pub async fn update(id: web::Path<Uuid>, body: web::Json<Update>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let update = body.into_inner();
    let status = match update.status.as_deref() {
        None => None,
        Some(s) => Some(SessionStatus::parse(s).ok_or_else(|| {
            ApiError::invalid("invalid_status", "status must be active, resolved, escalated or archived")
        })?),
    };
    if let Some(p) = &update.priority {
        if !PRIORITIES.contains(&p.as_str()) {
            return Err(ApiError::invalid("invalid_priority", "priority must be low, normal, high or urgent"));
        }
    }
    if status.is_none() && update.priority.is_none() && update.assignee_id.is_none() {
        return Err(ApiError::invalid("nothing_to_change", "give status, priority or assignee_id"));
    }
    let client = state.db.get().await?;
    if let Some(Some(assignee)) = update.assignee_id {
        let exists = client.query_opt("SELECT 1 FROM users WHERE id = $1 AND NOT disabled", &[&assignee]).await?;
        if exists.is_none() {
            return Err(ApiError::invalid("invalid_assignee", "assignee_id is not an active user"));
        }
    }
    let changed = client
        .execute(
            "UPDATE sessions SET
                status = COALESCE($2, status),
                escalated_at = CASE WHEN $2 = 'escalated' AND status <> 'escalated' THEN now() ELSE escalated_at END,
                priority = COALESCE($3, priority),
                assignee_id = CASE WHEN $4 THEN $5 ELSE assignee_id END,
                updated_at = now()
             WHERE id = $1",
            &[
                &*id,
                &status.map(|s| s.as_str()),
                &update.priority,
                &update.assignee_id.is_some(),
                &update.assignee_id.flatten(),
            ],
        )
        .await?;
    if changed == 0 {
        return Err(ApiError::NotFound("session"));
    }
    // Give the connection back before the summary takes one.
    drop(client);
    let session_id = SessionId(*id);
    if let Some(status) = status {
        state.hub.status_changed(session_id, status);
    }
    state.hub.session_changed(session_id);
    respond_with_summary(&state, *id).await
}

async fn respond_with_summary(state: &AppState, id: Uuid) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(sessions::summary(&state.db, id, state.config.inactive_after_hours).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaUpdate {
    qa_status: String,
    #[serde(default)]
    qa_notes: Option<String>,
}

/// Sets the QA status; every change is kept in `qa_history`, and moving to
/// `issue` writes a `qa.issue` outbox row in the same transaction (the QA
/// email). `fixed` is only reachable from `issue`.
pub async fn qa(id: web::Path<Uuid>, body: web::Json<QaUpdate>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let QaUpdate { qa_status, qa_notes } = body.into_inner();
    let to = QaStatus::parse(&qa_status)
        .ok_or_else(|| ApiError::invalid("invalid_qa_status", "qa_status must be unchecked, passed, issue or fixed"))?;
    let notes = qa_notes.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if notes.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTES_CHARS) {
        return Err(ApiError::invalid("notes_too_long", format!("qa_notes is longer than {MAX_NOTES_CHARS} characters")));
    }
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT qa_status, channel, customer_name, customer_email, customer_phone FROM sessions WHERE id = $1 FOR UPDATE",
            &[&*id],
        )
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    let from: String = row.get(0);
    if to == QaStatus::Fixed && from != QaStatus::Issue.as_str() {
        return Err(ApiError::Conflict(format!("only a session with a QA issue can be marked fixed (it is {from})")));
    }
    tx.execute(
        "UPDATE sessions SET qa_status = $2, qa_notes = COALESCE($3, qa_notes), qa_by = $4, qa_at = now(), updated_at = now()
         WHERE id = $1",
        &[&*id, &to.as_str(), &notes, &user.user_id],
    )
    .await?;
    let history_id: i64 = tx
        .query_one(
            "INSERT INTO qa_history (session_id, from_status, to_status, notes, user_id, username)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[&*id, &from, &to.as_str(), &notes, &user.user_id, &user.username],
        )
        .await?
        .get(0);
    if to == QaStatus::Issue && from != QaStatus::Issue.as_str() {
        let payload = json!({
            "session_id": *id,
            "channel": row.get::<_, String>(1),
            "customer": {"name": row.get::<_, Option<String>>(2), "email": row.get::<_, Option<String>>(3), "phone": row.get::<_, Option<String>>(4)},
            "qa_notes": notes,
            "flagged_by": user.username,
            "flagged_at": crate::protocol::rfc3339::format(&Utc::now()),
        });
        tx.execute(
            "INSERT INTO outbox (event_type, payload, idempotency_key, session_id) VALUES ('qa.issue', $1, $2, $3)",
            &[&payload, &format!("qa.issue/{}/{history_id}", *id), &*id],
        )
        .await?;
    }
    tx.commit().await?;
    drop(client);
    state.hub.session_changed(SessionId(*id));
    state.hub.notifier.wake();
    respond_with_summary(&state, *id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevFeedback {
    dev_feedback: String,
}

pub async fn dev_feedback(
    id: web::Path<Uuid>,
    body: web::Json<DevFeedback>,
    user: StaffUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let text = body.into_inner().dev_feedback.trim().to_owned();
    if text.chars().count() > MAX_NOTES_CHARS {
        return Err(ApiError::invalid("notes_too_long", format!("dev_feedback is longer than {MAX_NOTES_CHARS} characters")));
    }
    let changed = state
        .db
        .get()
        .await?
        .execute(
            "UPDATE sessions SET dev_feedback = NULLIF($2, ''), dev_feedback_by = $3, dev_feedback_at = now(), updated_at = now()
             WHERE id = $1",
            &[&*id, &text, &user.user_id],
        )
        .await?;
    if changed == 0 {
        return Err(ApiError::NotFound("session"));
    }
    state.hub.session_changed(SessionId(*id));
    respond_with_summary(&state, *id).await
}

pub async fn delete(id: web::Path<Uuid>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let deleted = state.db.get().await?.execute("DELETE FROM sessions WHERE id = $1", &[&*id]).await?;
    if deleted == 0 {
        return Err(ApiError::NotFound("session"));
    }
    state.hub.session_deleted(SessionId(*id));
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bulk {
    action: String,
    ids: Vec<Uuid>,
}

pub async fn bulk(body: web::Json<Bulk>, principal: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Bulk { action, ids } = body.into_inner();
    if ids.is_empty() || ids.len() > MAX_BULK_IDS {
        return Err(ApiError::invalid("invalid_ids", format!("ids must name 1 to {MAX_BULK_IDS} sessions")));
    }
    let client = state.db.get().await?;
    let affected: Vec<Uuid> = match action.as_str() {
        "archive" | "unarchive" => {
            let status = if action == "archive" { SessionStatus::Archived } else { SessionStatus::Active };
            let rows = client
                .query(
                    "UPDATE sessions SET status = $2, updated_at = now() WHERE id = ANY($1) AND status <> $2 RETURNING id",
                    &[&ids, &status.as_str()],
                )
                .await?;
            let affected: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
            for &id in &affected {
                state.hub.status_changed(SessionId(id), status);
                state.hub.session_changed(SessionId(id));
            }
            affected
        }
        "delete" => {
            if !DEVELOPERS.contains(&principal.staff()?.role) {
                return Err(ApiError::Forbidden("your role may not delete sessions"));
            }
            let rows = client.query("DELETE FROM sessions WHERE id = ANY($1) RETURNING id", &[&ids]).await?;
            let affected: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
            for &id in &affected {
                state.hub.session_deleted(SessionId(id));
            }
            affected
        }
        _ => return Err(ApiError::invalid("invalid_action", "action must be archive, unarchive or delete")),
    };
    Ok(HttpResponse::Ok().json(json!({ "action": action, "affected": affected.len(), "ids": affected })))
}

pub async fn stats(query: web::Query<ListQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut query = query.into_inner();
    // Stats cover every status unless one is asked for.
    if query.status.is_none() {
        query.status = Some("all".into());
    }
    let filter = Filter::parse(&query, state.config.timezone)?;
    let stats = sessions::stats(&state.db, &filter, state.config.timezone, state.config.inactive_after_hours).await?;
    Ok(HttpResponse::Ok().json(stats))
}

pub async fn escalations(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let query = ListQuery { status: Some("escalated".into()), per_page: Some(sessions::MAX_PER_PAGE), ..Default::default() };
    let filter = Filter::parse(&query, state.config.timezone)?;
    let mut page = sessions::list(&state.db, &filter, 1, sessions::MAX_PER_PAGE, state.config.inactive_after_hours).await?;
    let rank = |p: &str| PRIORITIES.iter().position(|x| *x == p).unwrap_or(1);
    page.sessions.sort_by(|a, b| rank(&b.priority).cmp(&rank(&a.priority)).then(a.escalated_at.cmp(&b.escalated_at)));
    // The list's one pagination shape, plus the documented `count`. One page:
    // the most urgent `MAX_PER_PAGE` (the sort by priority happens here).
    Ok(HttpResponse::Ok().json(json!({
        "count": page.total,
        "sessions": page.sessions,
        "total": page.total,
        "page": 1,
        "per_page": sessions::MAX_PER_PAGE,
    })))
}

pub async fn claim(id: web::Path<Uuid>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let changed = state
        .db
        .get()
        .await?
        .execute("UPDATE sessions SET assignee_id = $2, updated_at = now() WHERE id = $1", &[&*id, &user.user_id])
        .await?;
    if changed == 0 {
        return Err(ApiError::NotFound("session"));
    }
    state.hub.session_changed(SessionId(*id));
    respond_with_summary(&state, *id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeoverBody {
    on: bool,
}

pub async fn takeover(id: web::Path<Uuid>, body: web::Json<TakeoverBody>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let session = state.hub.session(SessionId(*id)).await?.ok_or(ApiError::NotFound("session"))?;
    let handler = session.takeover(body.on).await.map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok(HttpResponse::Ok().json(json!({ "session_id": *id, "handler": handler })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    client_msg_id: String,
    text: String,
}

/// A staff reply over HTTP; answers once it is stored, with its seq.
pub async fn reply(id: web::Path<Uuid>, body: web::Json<Reply>, user: StaffUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Reply { client_msg_id, text } = body.into_inner();
    let client_msg_id = ClientMsgId::parse(&client_msg_id).map_err(|e| ApiError::invalid(e.code, e.message))?;
    let text = ChatText::parse(&text, state.config.limits.max_message_chars).map_err(|e| ApiError::invalid(e.code, e.message))?;
    let session = state.hub.session(SessionId(*id)).await?.ok_or(ApiError::NotFound("session"))?;
    match session.staff_say_stored(user.user_id, client_msg_id, text).await {
        Ok(seq) => Ok(HttpResponse::Created().json(json!({ "session_id": *id, "seq": seq }))),
        Err(_) => Err(ApiError::Unavailable(anyhow::anyhow!("the reply could not be stored; resend it"))),
    }
}

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    include: Option<String>,
    #[serde(flatten)]
    list: ListQuery,
}

/// Streams the filtered sessions as CSV or JSON: rows are read from
/// PostgreSQL as they are written out, through a small bounded buffer, so
/// memory stays flat however many sessions match.
pub async fn export(query: web::Query<ExportQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let csv = match query.format.as_deref() {
        None | Some("csv") => true,
        Some("json") => false,
        Some(_) => return Err(ApiError::invalid("invalid_format", "format must be csv or json")),
    };
    let with_messages = match query.include.as_deref() {
        None | Some("") => false,
        Some("messages") => true,
        Some(_) => return Err(ApiError::invalid("invalid_include", "include must be messages")),
    };
    let filter = Filter::parse(&query.list, state.config.timezone)?;
    let (client, sql, params) = sessions::export_rows(&state.db, &filter, state.config.inactive_after_hours).await?;
    // The query runs before the first byte, so a query that fails is an
    // error status, not a 200 with a truncated body.
    let rows = client.query_raw(&sql, params.refs()).await?;
    let messages_client = if with_messages { Some(state.db.get().await?) } else { None };
    let (tx, rx) = mpsc::channel::<Result<Bytes, ApiError>>(EXPORT_BUFFER);
    let hours = state.config.inactive_after_hours;
    actix_web::rt::spawn(async move {
        let writer = ExportWriter { tx: tx.clone(), csv, with_messages, first: true };
        if let Err(e) = writer.run(client, rows, messages_client, hours).await {
            tracing::warn!(error = %e, "export stopped");
            // An error item makes the server cut the chunked body off without
            // its final chunk: the client sees a failed download, never a
            // complete-looking file that is missing rows.
            let _ = tx.send(Err(ApiError::Internal(e))).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let stamp = Utc::now().format("%Y%m%d-%H%M%S");
    let (content_type, extension) = if csv { ("text/csv; charset=utf-8", "csv") } else { ("application/json", "json") };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"chathub-sessions-{stamp}.{extension}\"")))
        .streaming(body))
}

const CSV_SESSION_COLUMNS: &[&str] = &[
    "session_id", "created_at", "channel", "site", "status", "completion", "completion_rule", "completed_at",
    "customer_name", "customer_email", "customer_phone", "qa_status", "qa_notes", "qa_by", "dev_feedback",
    "handler", "priority", "assignee", "message_count", "last_message_at",
];
const CSV_MESSAGE_COLUMNS: &[&str] = &["seq", "role", "text", "message_created_at"];

struct ExportWriter {
    tx: mpsc::Sender<Result<Bytes, ApiError>>,
    csv: bool,
    with_messages: bool,
    first: bool,
}

impl ExportWriter {
    async fn send(&self, bytes: impl Into<Bytes>) -> anyhow::Result<()> {
        self.tx.send(Ok(bytes.into())).await.map_err(|_| anyhow::anyhow!("the client went away"))
    }

    /// Writes the rows of a query already running on `_client` (held so its
    /// connection is not handed to anyone else until the stream ends).
    async fn run(
        mut self,
        _client: deadpool_postgres::Object,
        rows: tokio_postgres::RowStream,
        messages_client: Option<deadpool_postgres::Object>,
        hours: u32,
    ) -> anyhow::Result<()> {
        if self.csv {
            let mut header: Vec<&str> = CSV_SESSION_COLUMNS.to_vec();
            if self.with_messages {
                header.extend(CSV_MESSAGE_COLUMNS);
            }
            self.send(csv_line(header.iter().map(|s| s.to_string()))).await?;
        } else {
            self.send("[").await?;
        }
        pin_mut!(rows);
        let mut chunk: Vec<SessionSummary> = Vec::with_capacity(EXPORT_CHUNK);
        while let Some(row) = rows.next().await {
            chunk.push(SessionSummary::from_row(&row?, hours));
            if chunk.len() == EXPORT_CHUNK {
                self.write_chunk(&mut chunk, messages_client.as_ref()).await?;
            }
        }
        self.write_chunk(&mut chunk, messages_client.as_ref()).await?;
        if !self.csv {
            self.send("]\n").await?;
        }
        Ok(())
    }

    async fn write_chunk(&mut self, chunk: &mut Vec<SessionSummary>, messages_client: Option<&deadpool_postgres::Object>) -> anyhow::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let mut transcripts: std::collections::HashMap<Uuid, Vec<crate::protocol::MessageView>> = Default::default();
        if let (true, Some(client)) = (self.with_messages, messages_client) {
            let ids: Vec<Uuid> = chunk.iter().map(|s| s.id.0).collect();
            for row in client
                .query(
                    "SELECT session_id, seq, role, text, created_at FROM messages WHERE session_id = ANY($1) ORDER BY session_id, seq",
                    &[&ids],
                )
                .await?
            {
                transcripts.entry(row.get(0)).or_default().push(sessions::message_from_row(&row, 1));
            }
        }
        let mut out = String::new();
        for session in chunk.drain(..) {
            let messages = transcripts.remove(&session.id.0).unwrap_or_default();
            if self.csv {
                let base = session_cells(&session);
                if self.with_messages {
                    for m in &messages {
                        let mut cells = base.clone();
                        cells.extend([m.seq.to_string(), m.role.to_string(), m.text.clone(), crate::protocol::rfc3339::format(&m.created_at)]);
                        out.push_str(&csv_line(cells.into_iter()));
                    }
                } else {
                    out.push_str(&csv_line(base.into_iter()));
                }
            } else {
                if !self.first {
                    out.push(',');
                }
                self.first = false;
                let mut value = serde_json::to_value(&session)?;
                if self.with_messages {
                    value["messages"] = serde_json::to_value(&messages)?;
                }
                out.push_str(&serde_json::to_string(&value)?);
                out.push('\n');
            }
        }
        self.send(out).await
    }
}

fn session_cells(s: &SessionSummary) -> Vec<String> {
    let time = |t: &Option<chrono::DateTime<Utc>>| crate::protocol::rfc3339::format_opt(*t).unwrap_or_default();
    let text = |t: &Option<String>| t.clone().unwrap_or_default();
    vec![
        s.id.to_string(),
        crate::protocol::rfc3339::format(&s.created_at),
        s.channel.clone(),
        text(&s.site),
        s.status.clone(),
        s.completion.to_string(),
        text(&s.completion_rule),
        time(&s.completed_at),
        text(&s.customer.name),
        text(&s.customer.email),
        text(&s.customer.phone),
        s.qa_status.clone(),
        text(&s.qa_notes),
        text(&s.qa_by),
        text(&s.dev_feedback),
        s.handler.clone(),
        s.priority.clone(),
        text(&s.assignee),
        s.message_count.to_string(),
        time(&s.last_message_at),
    ]
}

/// Whether a spreadsheet could run this cell as a formula: it starts with
/// `=`, `+`, `-`, `@` (or their fullwidth forms, which some spreadsheets
/// fold), tab or CR, possibly after whitespace, NBSP or a BOM, which
/// spreadsheets skip when they parse a cell.
fn looks_like_formula(cell: &str) -> bool {
    if cell.starts_with(['\t', '\r']) {
        return true;
    }
    let rest = cell.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}' || c == '\u{200b}');
    rest.starts_with(['=', '+', '-', '@', '\u{ff1d}', '\u{ff0b}', '\u{ff0d}', '\u{ff20}'])
}

/// One RFC 4180 line. Cells that a spreadsheet would run as a formula get a
/// leading `'`: chat text is hostile.
pub fn csv_line(cells: impl Iterator<Item = String>) -> String {
    let mut line = String::new();
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            line.push(',');
        }
        let cell = if looks_like_formula(&cell) { format!("'{cell}") } else { cell };
        if cell.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&cell.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(&cell);
        }
    }
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_hidden_behind_spaces_bom_or_fullwidth_signs_are_defused() {
        for cell in [" =1+1", "\u{a0}=1", "\u{feff}=cmd", "\n=1", "\u{ff1d}SUM(A1)", "  @x", "\r=1", "\t+1"] {
            assert!(csv_line([cell.to_owned()].into_iter()).trim_start_matches('"').starts_with('\''), "not defused: {cell:?}");
        }
        for cell in ["hello", "a=b", "1-2", "user@example.com"] {
            assert!(!csv_line([cell.to_owned()].into_iter()).starts_with('\''), "needlessly changed: {cell:?}");
        }
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let line = csv_line(["plain".into(), "a,b".into(), "say \"hi\"".into(), "=HYPERLINK(\"x\")".into(), "two\nlines".into()].into_iter());
        assert_eq!(line, "plain,\"a,b\",\"say \"\"hi\"\"\",\"'=HYPERLINK(\"\"x\"\")\",\"two\nlines\"\r\n");
    }
}
