//! The dashboard's numbers over the filtered sessions: counts by status,
//! channel, QA state and completion, a per-day series in `TIMEZONE`, the
//! completion rate and the AI's response time, read from the rollups of
//! `stats_rollups`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Serialize;

use super::StoreError;
use super::session_filter::{Params, escalated_where_clause};
use super::stats_rollups::{self, Cell};
use crate::domain::Completion;
use crate::domain::listing::SessionFilter;
use crate::postgres::Db;

/// The dashboard's numbers.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub total: i64,
    pub by_completion: Counts,
    pub by_qa_status: Counts,
    pub by_channel: Counts,
    pub by_status: Counts,
    /// Sessions created and sessions completed per day, days in `TIMEZONE`.
    pub per_day: Vec<DayCount>,
    pub completion_rate: f64,
    pub ai_response_ms: Percentile,
    pub messages_per_session: f64,
    pub open_escalations: i64,
    /// The open escalations nobody took yet, and those someone is on.
    pub escalations: Escalations,
    /// The customers' ratings of the filtered sessions.
    pub csat: CsatStats,
    pub timezone: String,
}

#[derive(Debug, Serialize)]
pub struct CsatStats {
    pub responses: i64,
    /// The mean score, `null` before the first rating.
    pub average: Option<f64>,
    /// How many gave each score, "1" to "5".
    pub distribution: Counts,
}

#[derive(Debug, Serialize)]
pub struct Escalations {
    pub unassigned: i64,
    pub in_progress: i64,
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
    /// How many AI replies the figures are over.
    pub replies: i64,
}

type Counts = serde_json::Map<String, serde_json::Value>;

/// Open escalations among the filtered sessions (the dashboard's card),
/// unassigned and in progress, and the whole queue (the navigation badge):
/// few rows, through the partial index.
async fn escalations(db: &Db, filter: &SessionFilter, inactive_after_hours: u32) -> Result<(Escalations, i64), StoreError> {
    let mut params = Params::default();
    let condition = escalated_where_clause(filter, inactive_after_hours, &mut params);
    let sql = format!(
        "SELECT count(*) FILTER (WHERE s.assignee_id IS NULL), count(*) FILTER (WHERE s.assignee_id IS NOT NULL)
         FROM sessions s WHERE s.status = 'escalated' AND {condition}"
    );
    let client = db.get().await?;
    let row = client.query_one(&sql, &params.refs()).await?;
    let open: i64 = client.query_one("SELECT count(*) FROM sessions WHERE status = 'escalated'", &[]).await?.get(0);
    Ok((Escalations { unassigned: row.get(0), in_progress: row.get(1) }, open))
}

/// Counts per key; every key in `keys` is present, 0 if none.
fn counts<'a>(keys: &[&str], values: impl Iterator<Item = (String, i64)>) -> Counts {
    let mut map: Counts = keys.iter().map(|key| ((*key).to_owned(), 0.into())).collect();
    for (key, n) in values {
        let total = map.get(&key).and_then(|v| v.as_i64()).unwrap_or(0) + n;
        map.insert(key, total.into());
    }
    map
}

/// The stats of the filtered sessions, from `stats_rollups` (exact; see
/// there how), with the open escalations counted from their few rows.
pub async fn stats(db: &Db, filter: &SessionFilter, tz: Tz, inactive_after_hours: u32) -> Result<Stats, StoreError> {
    // The three reads at once, each on its own connection.
    let (tally, histogram, (escalations, open_escalations)) = futures_util::try_join!(
        stats_rollups::cells(db, filter, tz, inactive_after_hours),
        stats_rollups::latency_histogram(db, filter, tz),
        escalations(db, filter, inactive_after_hours),
    )?;

    let total: i64 = tally.iter().map(|(_, _, n)| n.sessions).sum();
    let messages: i64 = tally.iter().map(|(_, _, n)| n.messages).sum();
    let by = |key: fn(&Cell, Completion) -> Option<String>| tally.iter().filter_map(move |(c, state, n)| key(c, *state).map(|k| (k, n.sessions)));
    let by_completion = counts(&["complete", "in_progress", "incomplete"], by(|_, state| Some(state.as_str().to_owned())));
    let complete = by_completion.get("complete").and_then(|v| v.as_i64()).unwrap_or(0);
    let mut days: BTreeMap<NaiveDate, (i64, i64)> = BTreeMap::new();
    for (cell, _, n) in &tally {
        days.entry(cell.day).or_default().0 += n.sessions;
        if let Some(completed) = cell.completed_day {
            days.entry(completed).or_default().1 += n.sessions;
        }
    }
    let distribution = counts(&["1", "2", "3", "4", "5"], by(|c, _| c.csat.map(|score| score.to_string())));
    let responses: i64 = tally.iter().filter(|(c, _, _)| c.csat.is_some()).map(|(_, _, n)| n.sessions).sum();
    let score_sum: i64 = tally.iter().filter_map(|(c, _, n)| c.csat.map(|score| i64::from(score) * n.sessions)).sum();
    let replies: i64 = histogram.iter().map(|(_, n)| n).sum();
    // Tenths of a millisecond are all a dashboard shows.
    let tenths = |ms: Option<f64>| ms.map(|ms| (ms * 10.0).round() / 10.0);
    Ok(Stats {
        total,
        completion_rate: if total > 0 { complete as f64 / total as f64 } else { 0.0 },
        by_completion,
        by_qa_status: counts(&["unchecked", "passed", "issue", "fixed"], by(|c, _| Some(c.qa_status.clone()))),
        by_channel: counts(&["web", "messenger", "whatsapp", "test"], by(|c, _| Some(c.channel.clone()))),
        by_status: counts(&["active", "resolved", "escalated", "archived"], by(|c, _| Some(c.status.clone()))),
        per_day: days
            .into_iter()
            .map(|(day, (sessions, completions))| DayCount { day: day.format("%Y-%m-%d").to_string(), sessions, completions })
            .collect(),
        ai_response_ms: Percentile {
            median: tenths(stats_rollups::percentile(&histogram, 0.5)),
            p90: tenths(stats_rollups::percentile(&histogram, 0.9)),
            replies,
        },
        messages_per_session: if total > 0 { messages as f64 / total as f64 } else { 0.0 },
        open_escalations,
        escalations,
        csat: CsatStats { responses, average: (responses > 0).then(|| score_sum as f64 / responses as f64), distribution },
        timezone: tz.name().to_owned(),
    })
}
