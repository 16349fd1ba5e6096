//! `GET /api/sessions/export`: the filtered sessions as CSV or JSON,
//! streamed. Rows are read from PostgreSQL as they are written out, through
//! a small bounded buffer, so memory stays flat however many sessions match.
//! Chat text is hostile: CSV cells a spreadsheet would run as formulas are
//! defused.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use bytes::Bytes;
use chrono::Utc;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::ApiError;
use crate::domain::listing::{ListQuery, SessionFilter};
use crate::protocol::{MessageView, rfc3339};
use crate::state::AppState;
use crate::store::sessions::{SessionSummary, SummaryStream, TranscriptReader};

/// Export rows buffered ahead of the client (bounds memory per export).
const EXPORT_BUFFER: usize = 32;
/// Sessions whose messages are fetched together during an export.
const EXPORT_CHUNK: usize = 200;

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
pub async fn sessions(query: web::Query<ExportQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
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
    let filter = SessionFilter::parse(&query.list, state.config.timezone)?;
    // The query runs before the first byte, so a query that fails is an
    // error status, not a 200 with a truncated body.
    let rows = crate::store::sessions::export(&state.db, &filter, state.config.timezone, state.config.inactive_after_hours, state.config.search_index_max_matches)
        .await?;
    let transcripts = if with_messages { Some(TranscriptReader::open(&state.db).await?) } else { None };
    let (tx, rx) = mpsc::channel::<Result<Bytes, ApiError>>(EXPORT_BUFFER);
    actix_web::rt::spawn(async move {
        let public_url = state.config.public_url.trim_end_matches('/').to_owned();
        let writer = ExportWriter { tx: tx.clone(), csv, transcripts, public_url, first: true };
        if let Err(e) = writer.run(rows).await {
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
    "handler", "priority", "assignee", "message_count", "last_message_at", "csat_score", "csat_comment",
];
/// With `include=messages`: one line per message; `attachments` lists each
/// file as `name <url>` (absolute, on `CHATHUB_PUBLIC_URL`), `; `-separated.
const CSV_MESSAGE_COLUMNS: &[&str] = &["seq", "role", "text", "message_created_at", "attachments"];

struct ExportWriter {
    tx: mpsc::Sender<Result<Bytes, ApiError>>,
    csv: bool,
    /// Present when the export includes each session's messages.
    transcripts: Option<TranscriptReader>,
    /// `CHATHUB_PUBLIC_URL`, before attachment URLs in CSV.
    public_url: String,
    first: bool,
}

impl ExportWriter {
    async fn send(&self, bytes: impl Into<Bytes>) -> anyhow::Result<()> {
        self.tx.send(Ok(bytes.into())).await.map_err(|_| anyhow::anyhow!("the client went away"))
    }

    async fn run(mut self, mut rows: SummaryStream) -> anyhow::Result<()> {
        if self.csv {
            let mut header: Vec<&str> = CSV_SESSION_COLUMNS.to_vec();
            if self.transcripts.is_some() {
                header.extend(CSV_MESSAGE_COLUMNS);
            }
            self.send(csv_line(header.iter().map(|s| s.to_string()))).await?;
        } else {
            self.send("[").await?;
        }
        let mut chunk: Vec<SessionSummary> = Vec::with_capacity(EXPORT_CHUNK);
        while let Some(summary) = rows.next().await {
            chunk.push(summary?);
            if chunk.len() == EXPORT_CHUNK {
                self.write_chunk(&mut chunk).await?;
            }
        }
        self.write_chunk(&mut chunk).await?;
        if !self.csv {
            self.send("]\n").await?;
        }
        Ok(())
    }

    async fn write_chunk(&mut self, chunk: &mut Vec<SessionSummary>) -> anyhow::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let mut transcripts = match &self.transcripts {
            Some(reader) => Some(reader.read(&chunk.iter().map(|s| s.id.0).collect::<Vec<_>>()).await?),
            None => None,
        };
        let mut out = String::new();
        for session in chunk.drain(..) {
            let messages = transcripts.as_mut().map(|t| t.remove(&session.id.0).unwrap_or_default());
            if self.csv {
                write_csv_rows(&mut out, &session, messages.as_deref(), &self.public_url);
            } else {
                self.write_json_row(&mut out, &session, messages.as_deref())?;
            }
        }
        self.send(out).await
    }

    fn write_json_row(&mut self, out: &mut String, session: &SessionSummary, messages: Option<&[MessageView]>) -> anyhow::Result<()> {
        if !self.first {
            out.push(',');
        }
        self.first = false;
        let mut value = serde_json::to_value(session)?;
        if let Some(messages) = messages {
            value["messages"] = serde_json::to_value(messages)?;
        }
        out.push_str(&serde_json::to_string(&value)?);
        out.push('\n');
        Ok(())
    }
}

/// A session's CSV line, or with messages one line per message.
fn write_csv_rows(out: &mut String, session: &SessionSummary, messages: Option<&[MessageView]>, public_url: &str) {
    let base = session_cells(session);
    let Some(messages) = messages else {
        out.push_str(&csv_line(base.into_iter()));
        return;
    };
    for m in messages {
        let mut cells = base.clone();
        let files: Vec<String> = m.attachments.iter().map(|a| format!("{} <{public_url}{}>", a.name, a.url())).collect();
        cells.extend([m.seq.to_string(), m.role.to_string(), m.text.clone(), rfc3339::format(&m.created_at), files.join("; ")]);
        out.push_str(&csv_line(cells.into_iter()));
    }
}

fn session_cells(s: &SessionSummary) -> Vec<String> {
    let time = |t: &Option<chrono::DateTime<Utc>>| rfc3339::format_opt(*t).unwrap_or_default();
    let text = |t: &Option<String>| t.clone().unwrap_or_default();
    vec![
        s.id.to_string(),
        rfc3339::format(&s.created_at),
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
        s.csat_score.map(|n| n.to_string()).unwrap_or_default(),
        text(&s.csat_comment),
    ]
}

/// Whether a spreadsheet could run this cell as a formula: it starts with
/// `=`, `+`, `-`, `@` (or their fullwidth forms, which some spreadsheets
/// fold), tab or CR, possibly after whitespace, NBSP or a BOM, which
/// spreadsheets skip when they parse a cell. A phone number or a signed
/// number (`+15551234567`, `-12.5`, `+44 (20) 7946-0958`: only digits,
/// spaces, dots, dashes and parentheses after the sign) is data, left as it
/// is; anything else after a sign is defused, so `-2+3+cmd|…` still is.
fn looks_like_formula(cell: &str) -> bool {
    if cell.starts_with(['\t', '\r']) {
        return true;
    }
    let rest = cell.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}' || c == '\u{200b}');
    if let Some(number) = rest.strip_prefix(['+', '-']) {
        let numeric = number.starts_with(|c: char| c.is_ascii_digit())
            && number.chars().all(|c| c.is_ascii_digit() || " .-()".contains(c));
        if numeric {
            return false;
        }
    }
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
        for cell in ["-2+3+cmd|' /C calc'!A0", "+cmd", "-", "+ 1", "+1+cmd"] {
            assert!(csv_line([cell.to_owned()].into_iter()).trim_start_matches('"').starts_with('\''), "not defused: {cell:?}");
        }
        for cell in ["hello", "a=b", "1-2", "user@example.com", "+15551234567", "+44 (20) 7946-0958", "-12.5"] {
            assert!(!csv_line([cell.to_owned()].into_iter()).starts_with('\''), "needlessly changed: {cell:?}");
        }
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let line = csv_line(["plain".into(), "a,b".into(), "say \"hi\"".into(), "=HYPERLINK(\"x\")".into(), "two\nlines".into()].into_iter());
        assert_eq!(line, "plain,\"a,b\",\"say \"\"hi\"\"\",\"'=HYPERLINK(\"\"x\"\")\",\"two\nlines\"\r\n");
    }
}
