//! The SQL of the session list's filters: a checked `SessionFilter` becomes
//! a WHERE clause over `sessions s` and an ORDER BY, with its values bound
//! as positional parameters (never spliced into the text).

use chrono::Utc;
use tokio_postgres::types::ToSql;

use crate::domain::Completion;
use crate::domain::listing::{ListOrder, SessionFilter, StatusFilter};

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

/// The WHERE clause over `sessions s`, adding its values to `params`.
pub fn where_clause(filter: &SessionFilter, inactive_after_hours: u32, params: &mut Params) -> String {
    // A widget opened but never written in leaves an empty session: it is
    // not a conversation, so lists, stats and exports leave it out.
    let mut clauses = vec!["s.last_seq > 0".to_owned()];
    if let Some(from) = filter.from {
        clauses.push(format!("s.created_at >= {}", params.push(from)));
    }
    if let Some(until) = filter.until {
        clauses.push(format!("s.created_at < {}", params.push(until)));
    }
    if let Some(channel) = filter.channel {
        clauses.push(format!("s.channel = {}", params.push(channel.as_str())));
    }
    if let Some(qa) = filter.qa_status {
        clauses.push(format!("s.qa_status = {}", params.push(qa.as_str())));
    }
    match filter.status {
        StatusFilter::NotArchived => clauses.push("s.status <> 'archived'".into()),
        StatusFilter::All => {}
        StatusFilter::Only(status) => clauses.push(format!("s.status = {}", params.push(status.as_str()))),
    }
    if let Some(completion) = filter.completion {
        clauses.push(completion_clause(completion, inactive_after_hours, params));
    }
    if let Some(site) = &filter.site {
        clauses.push(format!("s.site_id = (SELECT id FROM sites WHERE key = {})", params.push(site.clone())));
    }
    if let Some(search) = &filter.search {
        let pattern = params.push(format!("%{}%", escape_like(search)));
        clauses.push(format!(
            "(s.customer_name ILIKE {pattern} OR s.customer_email ILIKE {pattern} OR s.customer_phone ILIKE {pattern}
              OR s.external_id ILIKE {pattern}
              OR EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id AND m.text ILIKE {pattern}))"
        ));
    }
    clauses.join(" AND ")
}

/// Completion is derived, never stored: `in_progress` and `incomplete` are
/// split at the inactivity cutoff.
fn completion_clause(completion: Completion, inactive_after_hours: u32, params: &mut Params) -> String {
    if completion == Completion::Complete {
        return "s.completed_at IS NOT NULL".into();
    }
    let cutoff = params.push(inactivity_cutoff(inactive_after_hours));
    let side = if completion == Completion::InProgress { ">" } else { "<=" };
    format!("s.completed_at IS NULL AND COALESCE(s.last_message_at, s.created_at) {side} {cutoff}")
}

/// The instant before which a conversation without a completion counts as incomplete.
pub fn inactivity_cutoff(inactive_after_hours: u32) -> chrono::DateTime<Utc> {
    Utc::now() - chrono::Duration::hours(inactive_after_hours.into())
}

/// The ORDER BY of a listing; every order ends on the id, so pages are stable.
pub fn order_by(order: ListOrder) -> &'static str {
    match order {
        ListOrder::Created => "s.created_at DESC, s.id DESC",
        ListOrder::Activity => "COALESCE(s.last_message_at, s.created_at) DESC, s.id DESC",
        ListOrder::Urgency => {
            "CASE s.priority WHEN 'urgent' THEN 3 WHEN 'high' THEN 2 WHEN 'low' THEN 0 ELSE 1 END DESC,
             s.escalated_at ASC NULLS FIRST, s.id"
        }
    }
}

/// `%`, `_` and `\` in search text match themselves.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
