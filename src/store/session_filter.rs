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

/// A message's words, as `messages_text_search_idx` indexes them (see
/// `postgres/online_indexes.sql`): the `simple` configuration lowercases and
/// splits, with no stemming and no stop words, so any language searches alike.
pub(super) const MESSAGE_WORDS: &str = "to_tsvector('simple', text)";
/// The customer fields searched by substring, as `sessions_customer_search_idx`
/// indexes them (trigrams).
pub(super) const CUSTOMER_TEXT: &str =
    "(coalesce(customer_name, '') || ' ' || coalesce(customer_email, '') || ' ' || coalesce(customer_phone, '') || ' ' || coalesce(external_id, ''))";

/// How a search's condition finds its sessions (`session_search` picks one).
#[derive(Debug, Clone, Copy)]
pub enum SearchPlan<'a> {
    /// Every matching message and customer through their indexes, then
    /// their sessions: costs what the matches number, so for rare words.
    Indexes,
    /// Session by session, each probed for a matching message: costs what
    /// the sessions walked past number, so for words common enough that a
    /// page is found after a few.
    Probe,
    /// The sessions a search already found through the indexes.
    Among(&'a [uuid::Uuid]),
}

/// The WHERE clause over `sessions s`, adding its values to `params`; a
/// search goes through the indexes.
pub fn where_clause(filter: &SessionFilter, inactive_after_hours: u32, params: &mut Params) -> String {
    where_clause_planned(filter, inactive_after_hours, SearchPlan::Indexes, params)
}

/// The WHERE clause, with a search found by `plan`.
pub fn where_clause_planned(filter: &SessionFilter, inactive_after_hours: u32, plan: SearchPlan<'_>, params: &mut Params) -> String {
    let mut clauses = vec![unsearched_clause(filter, inactive_after_hours, params)];
    if let Some(search) = &filter.search {
        clauses.push(search_clause(search, plan, params));
    }
    clauses.join(" AND ")
}

/// The WHERE clause over escalated sessions (`s.status = 'escalated'`
/// is the caller's). It leaves out the test for a message: a session is
/// escalated by its agent with a reply, or by staff, who see only
/// conversations, so it holds anyway, and leaving `last_seq` out keeps the
/// counts in `sessions_escalated_counts_idx` alone (see there why it cannot
/// cover `last_seq`).
pub fn escalated_where_clause(filter: &SessionFilter, inactive_after_hours: u32, params: &mut Params) -> String {
    let mut clauses = filter_clauses(filter, inactive_after_hours, params);
    if let Some(search) = &filter.search {
        clauses.push(search_clause(search, SearchPlan::Indexes, params));
    }
    if clauses.is_empty() { "TRUE".to_owned() } else { clauses.join(" AND ") }
}

/// The WHERE clause of every filter but the search.
pub(super) fn unsearched_clause(filter: &SessionFilter, inactive_after_hours: u32, params: &mut Params) -> String {
    // A widget opened but never written in leaves an empty session: it is
    // not a conversation, so lists, stats and exports leave it out.
    let mut clauses = vec!["s.last_seq > 0".to_owned()];
    clauses.extend(filter_clauses(filter, inactive_after_hours, params));
    clauses.join(" AND ")
}

/// The filter's times, dimensions and completion.
fn filter_clauses(filter: &SessionFilter, inactive_after_hours: u32, params: &mut Params) -> Vec<String> {
    let mut clauses = Vec::new();
    if let Some(from) = filter.from {
        clauses.push(format!("s.created_at >= {}", params.push(from)));
    }
    if let Some(until) = filter.until {
        clauses.push(format!("s.created_at < {}", params.push(until)));
    }
    clauses.extend(dimension_clauses(filter, "s.", params));
    if let Some(completion) = filter.completion {
        clauses.push(completion_clause(completion, inactive_after_hours, params));
    }
    clauses
}

/// Words in the transcript (web-search syntax: "a phrase", -word, or) or a
/// substring of the customer's name, email, phone or channel id.
pub(super) fn search_clause(search: &str, plan: SearchPlan<'_>, params: &mut Params) -> String {
    let words_and_pattern = |params: &mut Params| (params.push(search.to_owned()), params.push(substring_pattern(search)));
    match plan {
        SearchPlan::Among(ids) => format!("s.id = ANY({})", params.push(ids.to_vec())),
        SearchPlan::Indexes => {
            let (words, pattern) = words_and_pattern(params);
            format!("s.id IN ({})", indexed_matches(&words, &pattern, None, "UNION"))
        }
        // The session's words rule most sessions out before any of their
        // messages is read (`session_words`). `OFFSET 0` keeps the probe a
        // probe: without it PostgreSQL may instead hash every matching
        // message once through the index, which for a phrase of two common
        // words read 170,000 messages (6.8 s) to answer for 200 sessions.
        SearchPlan::Probe => {
            let (words, pattern) = words_and_pattern(params);
            format!(
                "({} ILIKE {pattern}
                  OR ({} AND EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id AND {MESSAGE_WORDS} @@ websearch_to_tsquery('simple', {words}) OFFSET 0)))",
                CUSTOMER_TEXT.replace("coalesce(", "coalesce(s."),
                super::session_words::may_match("s.id", &words),
            )
        }
    }
}

/// The sessions of the messages whose words match `words` and those whose
/// customer fields contain `pattern` (placeholders), each through its own
/// index, joined by `union` (`UNION`, or `UNION ALL` to stream them). With
/// a `key` (the placeholder of a pattern that `pattern` implies), the
/// trigram index is asked for the key alone and its rows then checked
/// against the whole pattern: a shorter, rarer key reads far less of the
/// index (see `session_search::customer_key`).
pub(super) fn indexed_matches(words: &str, pattern: &str, key: Option<&str>, union: &str) -> String {
    let customers = match key {
        None => format!("SELECT c.id FROM sessions c WHERE {CUSTOMER_TEXT} ILIKE {pattern}"),
        // `OFFSET 0` keeps the whole pattern out of the index's question.
        Some(key) => format!(
            "SELECT keyed.id FROM (SELECT c.id, {CUSTOMER_TEXT} AS customer FROM sessions c WHERE {CUSTOMER_TEXT} ILIKE {key} OFFSET 0) keyed
             WHERE keyed.customer ILIKE {pattern}"
        ),
    };
    format!("SELECT m.session_id FROM messages m WHERE {MESSAGE_WORDS} @@ websearch_to_tsquery('simple', {words}) {union} {customers}")
}

/// `search` as the ILIKE pattern of a substring.
pub(super) fn substring_pattern(search: &str) -> String {
    format!("%{}%", escape_like(search))
}

/// The filter's conditions on the columns `sessions` and the stats'
/// rollups share (channel, rating, QA status, status, site), over the
/// columns of `prefix` (`"s."`, `"r."` or `""`).
pub fn dimension_clauses(filter: &SessionFilter, prefix: &str, params: &mut Params) -> Vec<String> {
    let mut clauses = vec![channel_clause(filter, prefix, params)];
    if let Some(score) = filter.csat {
        clauses.push(format!("{prefix}csat_score = {}", params.push(score)));
    }
    if let Some(qa) = filter.qa_status {
        clauses.push(format!("{prefix}qa_status = {}", params.push(qa.as_str())));
    }
    match filter.status {
        StatusFilter::NotArchived => clauses.push(format!("{prefix}status <> 'archived'")),
        StatusFilter::All => {}
        StatusFilter::Only(status) => clauses.push(format!("{prefix}status = {}", params.push(status.as_str()))),
    }
    if let Some(site) = &filter.site {
        clauses.push(format!("{prefix}site_id = (SELECT id FROM sites WHERE key = {})", params.push(site.clone())));
    }
    clauses
}

/// The filter's channel, or every channel but the dashboard's "Test AI"
/// chats: staff trying the agent, not customers, left out unless asked for
/// (`channel=test`).
pub fn channel_clause(filter: &SessionFilter, prefix: &str, params: &mut Params) -> String {
    match filter.channel {
        Some(channel) => format!("{prefix}channel = {}", params.push(channel.as_str())),
        None => format!("{prefix}channel <> 'test'"),
    }
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

/// The time a keyset cursor compares for `order` (with the id after it);
/// both have an index on (key DESC, id DESC).
pub fn sort_key(order: ListOrder) -> &'static str {
    match order {
        ListOrder::Activity => "COALESCE(s.last_message_at, s.created_at)",
        ListOrder::Created | ListOrder::Urgency => "s.created_at",
    }
}

/// `%`, `_` and `\` in search text match themselves.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The search expressions are the indexed ones, or PostgreSQL would not
    /// use the indexes and search would scan every message.
    #[test]
    fn search_uses_exactly_the_indexed_expressions() {
        let indexes = crate::postgres::online_indexes();
        let indexed = |name: &str, expression: &str| indexes.iter().any(|(n, sql)| *n == name && sql.contains(expression));
        assert!(indexed("messages_text_search_idx", MESSAGE_WORDS));
        assert!(indexed("sessions_customer_search_idx", CUSTOMER_TEXT));
        assert!(indexed("sessions_activity_id_idx", &sort_key(ListOrder::Activity).replace("s.", "")));
    }
}
