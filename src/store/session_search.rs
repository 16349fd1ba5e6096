//! Searching the session list: how a search finds its sessions, how many
//! there are, and the message each matched.
//!
//! A word's cost depends on how common it is. Through the full-text index a
//! rare word costs nothing, but a common one (in most conversations) means
//! reading every one of its millions of messages before the first page can
//! be sorted. Walking the list newest first and probing each session's
//! messages finds a common word's page after a few dozen sessions, but
//! would walk every session for a rare one. So the planner's statistics of
//! the full-text index are asked first how many messages the words match
//! (`index_is_cheap`): when few, the indexes give the matching sessions, at
//! most `SEARCH_INDEX_MAX_MATCHES` rows of them; when many (or more after
//! all) the list is walked, each session ruled out by its words
//! (`session_words`) or probed message by message, and the total estimated
//! from the newest `SAMPLE` sessions. A phrase of common words is walked
//! too: the index knows words, not their order, so every message with both
//! would be read and checked. Every way finds the same sessions in the same
//! order; only a walked list's total is an estimate, when the list is
//! longer than the sample.

use chrono_tz::Tz;
use uuid::Uuid;

use super::StoreError;
use super::session_filter::{CUSTOMER_TEXT, MESSAGE_WORDS, Params, SearchPlan, indexed_matches, search_clause, substring_pattern, unsearched_clause};
use super::sessions::SearchMatch;
use crate::domain::listing::SessionFilter;
use crate::postgres::Db;

/// Newest sessions of the filtered list probed to estimate how many a
/// common word is in.
const SAMPLE: i64 = 200;
/// The share of a column's rows PostgreSQL estimates a full-text query
/// about a word it has no statistics of to match (`DEFAULT_TS_MATCH_SEL`),
/// with a little room for rounding.
const UNKNOWN_WORD_SHARE: f64 = 0.0051;

/// What a search found.
#[derive(Debug)]
pub enum Found {
    /// Words in many messages: the list is walked, each session probed
    /// (`SearchPlan::Probe`).
    Walk(SearchCount),
    /// Rare words: exactly these sessions (before the other filters).
    Among(Vec<Uuid>),
}

impl Found {
    pub fn plan(&self) -> SearchPlan<'_> {
        match self {
            Self::Walk(_) => SearchPlan::Probe,
            Self::Among(ids) => SearchPlan::Among(ids),
        }
    }
}

/// How many sessions a search matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchCount {
    pub total: i64,
    /// `true` when `total` is an estimate: the share of the sample that
    /// matched, times the filtered list's length (a list no longer than the
    /// sample is counted exactly).
    pub estimated: bool,
}

/// Finds how to list the sessions of `filter`'s search (see the module
/// doc); `None` without a search.
pub async fn find(db: &Db, filter: &SessionFilter, tz: Tz, inactive_after_hours: u32, max_indexed: i64) -> Result<Option<Found>, StoreError> {
    match &filter.search {
        Some(search) => Ok(Some(find_search(db, filter, search, tz, inactive_after_hours, max_indexed).await?)),
        None => Ok(None),
    }
}

/// The plan of what `find` found: the indexes' union when nothing was
/// searched for (the condition is then not used).
pub fn plan(found: &Option<Found>) -> SearchPlan<'_> {
    found.as_ref().map_or(SearchPlan::Indexes, Found::plan)
}

async fn find_search(db: &Db, filter: &SessionFilter, search: &str, tz: Tz, inactive_after_hours: u32, max_indexed: i64) -> Result<Found, StoreError> {
    if max_indexed > 0 && index_is_cheap(db, search, max_indexed).await? {
        let mut params = Params::default();
        let (words, pattern) = (params.push(search.to_owned()), params.push(substring_pattern(search)));
        let key = customer_key(db, search).await?.map(|key| params.push(substring_pattern(&key)));
        let limit = params.push(max_indexed);
        // UNION ALL streams, so the LIMIT stops it early; duplicates go here.
        let sql = format!("SELECT * FROM ({}) found LIMIT {limit}", indexed_matches(&words, &pattern, key.as_deref(), "UNION ALL"));
        let rows = db.get().await?.query(&sql, &params.refs()).await?;
        if (rows.len() as i64) < max_indexed {
            let mut ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
            ids.sort_unstable();
            ids.dedup();
            return Ok(Found::Among(ids));
        }
    }
    let (hits, walked) = sample(db, filter, search, inactive_after_hours).await?;
    if walked < SAMPLE {
        return Ok(Found::Walk(SearchCount { total: hits, estimated: false }));
    }
    let unsearched = SessionFilter { search: None, ..filter.clone() };
    let listed = super::stats_rollups::count(db, &unsearched, tz, inactive_after_hours).await?;
    Ok(Found::Walk(SearchCount { total: (hits as f64 * listed as f64 / walked as f64).round() as i64, estimated: true }))
}

/// The search's matches among the newest `SAMPLE` sessions of the filtered
/// list, and how many sessions that sample had.
async fn sample(db: &Db, filter: &SessionFilter, search: &str, inactive_after_hours: u32) -> Result<(i64, i64), StoreError> {
    let mut params = Params::default();
    let listed = unsearched_clause(filter, inactive_after_hours, &mut params);
    let hit = search_clause(search, SearchPlan::Probe, &mut params);
    let sample = params.push(SAMPLE);
    let sql = format!(
        "SELECT count(*) FILTER (WHERE hit), count(*) FROM
           (SELECT {hit} AS hit FROM sessions s WHERE {listed} ORDER BY s.created_at DESC, s.id DESC LIMIT {sample}) sampled"
    );
    let row = db.get().await?.query_one(&sql, &params.refs()).await?;
    Ok((row.get(0), row.get(1)))
}

/// Whether the full-text index gives few candidate messages for the words,
/// by the planner's statistics: at most `max_indexed`, or at most what it
/// estimates for a word it has no statistics of (0.5 % of the messages;
/// so a word found nowhere goes through the index). A phrase of two common
/// words has many candidates, each read and rechecked.
async fn index_is_cheap(db: &Db, search: &str, max_indexed: i64) -> Result<bool, StoreError> {
    let client = db.get().await?;
    let sql = format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM messages WHERE {MESSAGE_WORDS} @@ websearch_to_tsquery('simple', $1)");
    let explained: serde_json::Value = client.query_one(&sql, &[&search]).await?.get(0);
    let candidates = explained[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0);
    let messages: f32 = client.query_one("SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'messages'::regclass", &[]).await?.get(0);
    Ok(candidates <= (max_indexed as f64).max(f64::from(messages) * UNKNOWN_WORD_SHARE))
}

/// Counts the filtered sessions: without a search from the rollups, else
/// what `find` found: exact for the indexes' sessions, else the estimate
/// made while finding.
pub async fn count(db: &Db, filter: &SessionFilter, found: Option<&Found>, tz: Tz, inactive_after_hours: u32) -> Result<SearchCount, StoreError> {
    match found {
        None => Ok(SearchCount { total: super::stats_rollups::count(db, filter, tz, inactive_after_hours).await?, estimated: false }),
        Some(Found::Walk(count)) => Ok(*count),
        Some(Found::Among(ids)) => {
            let mut params = Params::default();
            let condition = format!("{} AND s.id = ANY({})", unsearched_clause(filter, inactive_after_hours, &mut params), params.push(ids.clone()));
            let sql = format!("SELECT count(*) FROM sessions s WHERE {condition}");
            Ok(SearchCount { total: db.get().await?.query_one(&sql, &params.refs()).await?.get(0), estimated: false })
        }
    }
}

/// The GIN indexes search reads (words of messages, trigrams of customers).
const GIN_INDEXES: [&str; 2] = ["messages_text_search_idx", "sessions_customer_search_idx"];

/// Moves the entries GIN keeps in its pending list (`fastupdate`) into the
/// indexes proper; returns how many pages that emptied. Run every second
/// out of band (`actors::index_upkeep`), so the list never reaches its
/// 4 MB limit, where the insert that finds it full merges all of it before
/// committing: that held every conversation's write for 50-100 ms every few
/// seconds. An index not built yet is skipped.
pub async fn flush_pending_entries(db: &Db) -> Result<i64, StoreError> {
    let row = db
        .get()
        .await?
        .query_one(
            "SELECT COALESCE(sum(gin_clean_pending_list(c.oid)), 0)::int8 FROM pg_class c
             WHERE c.relname = ANY($1) AND c.relkind = 'i' AND c.relnamespace = current_schema()::regnamespace",
            &[&&GIN_INDEXES[..]],
        )
        .await?;
    Ok(row.get(0))
}

/// Per session of `ids`, its newest message whose words match `search`
/// (sessions found by a customer field may have none): each read newest
/// first through the primary key, never by every match of the word.
pub async fn matches(db: &Db, ids: &[Uuid], search: &str) -> Result<Vec<SearchMatch>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT ids.id, found.seq, found.text FROM unnest($1::uuid[]) AS ids(id)
         CROSS JOIN LATERAL (SELECT m.seq, m.text FROM messages m
                             WHERE m.session_id = ids.id AND {MESSAGE_WORDS} @@ websearch_to_tsquery('simple', $2)
                             ORDER BY m.seq DESC LIMIT 1) found"
    );
    let rows = db.get().await?.query(&sql, &[&ids, &search]).await?;
    Ok(rows.iter().map(|r| SearchMatch { session_id: r.get(0), seq: r.get(1), text: r.get(2) }).collect())
}

/// Customers whose fields are read to learn how common each trigram is.
const KEY_SAMPLE: i64 = 300;
/// The shortest key worth asking the index for (two trigrams).
const KEY_CHARS: usize = 4;

/// A substring of `search` to ask the trigram index for instead of the
/// whole of it, when one reads less: the index's cost grows with how many
/// customers have each trigram of the pattern, and most of an email or a
/// phone number is shared by every customer (`customer…@example.com`,
/// `+1555…`), while a few characters of it are not. The trigrams are
/// counted over the newest customers; the key is the stretch of letters or
/// digits (ASCII) of `KEY_CHARS` to `KEY_CHARS + 2` characters whose
/// trigrams are rarest there. `None`: the search is short, or no stretch
/// is rarer.
async fn customer_key(db: &Db, search: &str) -> Result<Option<String>, StoreError> {
    // ASCII only: its case folds the same here and in PostgreSQL's ILIKE.
    let lower = search.to_ascii_lowercase();
    let runs: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|run| run.len() >= KEY_CHARS).collect();
    if lower.chars().count() < 2 * KEY_CHARS || runs.is_empty() {
        return Ok(None);
    }
    let sql = format!("SELECT lower({CUSTOMER_TEXT}) FROM sessions ORDER BY created_at DESC LIMIT $1");
    let customers: Vec<String> = db.get().await?.query(&sql, &[&KEY_SAMPLE]).await?.iter().map(|r| r.get(0)).collect();
    let mut seen: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    for customer in &customers {
        let mut own: Vec<&str> = trigrams(customer).collect();
        own.sort_unstable();
        own.dedup();
        for trigram in own {
            *seen.entry(trigram).or_default() += 1;
        }
    }
    let cost = |text: &str| trigrams(text).map(|t| seen.get(t).copied().unwrap_or(0)).sum::<u32>();
    let whole = cost(&lower);
    // The runs are ASCII, so byte offsets are characters.
    let best = runs
        .iter()
        .flat_map(|run| {
            (KEY_CHARS..=(KEY_CHARS + 2).min(run.len())).flat_map(move |len| (0..=run.len() - len).map(move |start| &run[start..start + len]))
        })
        .min_by_key(|key| (cost(key), std::cmp::Reverse(key.len())))
        .map(str::to_owned);
    Ok(best.filter(|key| cost(key) < whole && key.len() < lower.len()))
}

/// The trigrams of each stretch of ASCII letters and digits in `text`
/// (ASCII, so byte offsets are characters).
fn trigrams(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_alphanumeric()).flat_map(|run| (0..run.len().saturating_sub(2)).map(move |i| &run[i..i + 3]))
}

#[cfg(test)]
mod tests {
    use super::trigrams;

    #[test]
    fn trigrams_stay_within_stretches_of_letters_and_digits() {
        let all: Vec<&str> = trigrams("ab1@cd").collect();
        assert_eq!(all, vec!["ab1"]);
        assert_eq!(trigrams("+15550004242").count(), 9);
    }
}
