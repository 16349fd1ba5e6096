//! The dashboard's numbers over the filtered sessions: counts by status,
//! channel, QA state and completion, a per-day series in `TIMEZONE`, the
//! completion rate and the AI's response time.

use chrono_tz::Tz;
use serde::Serialize;

use super::StoreError;
use super::session_filter::{Params, inactivity_cutoff, where_clause};
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

/// The statements of one stats request: each gets its own parameter list,
/// the filter's first, then its own.
struct Scoped<'a> {
    client: deadpool_postgres::Object,
    filter: &'a SessionFilter,
    inactive_after_hours: u32,
}

impl Scoped<'_> {
    fn condition(&self) -> (String, Params) {
        let mut params = Params::default();
        let condition = where_clause(self.filter, self.inactive_after_hours, &mut params);
        (condition, params)
    }

    /// Counts per value of `column`; every key in `keys` is present, 0 if none.
    async fn grouped(&self, column: &str, keys: &[&str]) -> Result<Counts, StoreError> {
        let (condition, params) = self.condition();
        let sql = format!("SELECT {column}, count(*) FROM sessions s WHERE {condition} GROUP BY 1");
        Ok(counts(self.client.query(&sql, &params.refs()).await?, keys))
    }

    async fn by_completion(&self) -> Result<Counts, StoreError> {
        let (condition, mut params) = self.condition();
        let cutoff = params.push(inactivity_cutoff(self.inactive_after_hours));
        let sql = format!(
            "SELECT CASE WHEN s.completed_at IS NOT NULL THEN 'complete'
                         WHEN COALESCE(s.last_message_at, s.created_at) > {cutoff} THEN 'in_progress'
                         ELSE 'incomplete' END, count(*)
             FROM sessions s WHERE {condition} GROUP BY 1"
        );
        Ok(counts(self.client.query(&sql, &params.refs()).await?, &["complete", "in_progress", "incomplete"]))
    }

    async fn per_day(&self, tz: Tz) -> Result<Vec<DayCount>, StoreError> {
        let (condition, mut params) = self.condition();
        let zone = params.push(tz.name().to_owned());
        let sql = format!(
            "WITH scoped AS (SELECT s.created_at, s.completed_at FROM sessions s WHERE {condition}),
             created AS (SELECT to_char(created_at AT TIME ZONE {zone}::text, 'YYYY-MM-DD') AS day, count(*) AS n
                         FROM scoped GROUP BY 1),
             completed AS (SELECT to_char(completed_at AT TIME ZONE {zone}::text, 'YYYY-MM-DD') AS day, count(*) AS n
                           FROM scoped WHERE completed_at IS NOT NULL GROUP BY 1)
             SELECT COALESCE(c.day, d.day), COALESCE(c.n, 0), COALESCE(d.n, 0)
             FROM created c FULL JOIN completed d ON d.day = c.day ORDER BY 1"
        );
        let rows = self.client.query(&sql, &params.refs()).await?;
        Ok(rows.iter().map(|r| DayCount { day: r.get(0), sessions: r.get(1), completions: r.get(2) }).collect())
    }

    async fn ai_response_ms(&self) -> Result<Percentile, StoreError> {
        let (condition, params) = self.condition();
        let sql = format!(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY m.latency_ms),
                    percentile_cont(0.9) WITHIN GROUP (ORDER BY m.latency_ms), count(*)
             FROM messages m JOIN sessions s ON s.id = m.session_id
             WHERE m.role = 'ai' AND m.latency_ms IS NOT NULL AND {condition}"
        );
        let row = self.client.query_one(&sql, &params.refs()).await?;
        Ok(Percentile { median: row.get(0), p90: row.get(1), replies: row.get(2) })
    }

    /// How many sessions match, and their mean message count.
    async fn totals(&self) -> Result<(i64, f64), StoreError> {
        let (condition, params) = self.condition();
        let sql = format!("SELECT count(*), COALESCE(avg(s.last_seq), 0)::float8 FROM sessions s WHERE {condition}");
        let row = self.client.query_one(&sql, &params.refs()).await?;
        Ok((row.get(0), row.get(1)))
    }

    /// Open escalations among the filtered sessions (the dashboard's card),
    /// unassigned and in progress.
    async fn escalations(&self) -> Result<Escalations, StoreError> {
        let (condition, params) = self.condition();
        let sql = format!(
            "SELECT count(*) FILTER (WHERE s.assignee_id IS NULL), count(*) FILTER (WHERE s.assignee_id IS NOT NULL)
             FROM sessions s WHERE s.status = 'escalated' AND {condition}"
        );
        let row = self.client.query_one(&sql, &params.refs()).await?;
        Ok(Escalations { unassigned: row.get(0), in_progress: row.get(1) })
    }

    async fn csat(&self) -> Result<CsatStats, StoreError> {
        let (condition, params) = self.condition();
        let sql = format!("SELECT s.csat_score::text, count(*) FROM sessions s WHERE s.csat_score IS NOT NULL AND {condition} GROUP BY 1");
        let distribution = counts(self.client.query(&sql, &params.refs()).await?, &["1", "2", "3", "4", "5"]);
        let scored: Vec<(i64, i64)> = distribution.iter().map(|(k, v)| (k.parse().unwrap_or(0), v.as_i64().unwrap_or(0))).collect();
        let responses: i64 = scored.iter().map(|(_, n)| n).sum();
        let average = (responses > 0).then(|| scored.iter().map(|(score, n)| score * n).sum::<i64>() as f64 / responses as f64);
        Ok(CsatStats { responses, average, distribution })
    }

    /// Open escalations overall: the queue, whatever the filter (the
    /// navigation badge).
    async fn open_escalations(&self) -> Result<i64, StoreError> {
        Ok(self.client.query_one("SELECT count(*) FROM sessions WHERE status = 'escalated'", &[]).await?.get(0))
    }
}

fn counts(rows: Vec<tokio_postgres::Row>, keys: &[&str]) -> Counts {
    let mut map: Counts = keys.iter().map(|key| ((*key).to_owned(), 0.into())).collect();
    for row in rows {
        map.insert(row.get::<_, String>(0), row.get::<_, i64>(1).into());
    }
    map
}

pub async fn stats(db: &Db, filter: &SessionFilter, tz: Tz, inactive_after_hours: u32) -> Result<Stats, StoreError> {
    let scoped = Scoped { client: db.get().await?, filter, inactive_after_hours };
    let by_completion = scoped.by_completion().await?;
    let (total, messages_per_session) = scoped.totals().await?;
    let complete = by_completion.get("complete").and_then(|v| v.as_i64()).unwrap_or(0);
    let escalations = scoped.escalations().await?;
    Ok(Stats {
        total,
        completion_rate: if total > 0 { complete as f64 / total as f64 } else { 0.0 },
        by_completion,
        by_qa_status: scoped.grouped("s.qa_status", &["unchecked", "passed", "issue", "fixed"]).await?,
        by_channel: scoped.grouped("s.channel", &["web", "messenger", "whatsapp", "test"]).await?,
        by_status: scoped.grouped("s.status", &["active", "resolved", "escalated", "archived"]).await?,
        per_day: scoped.per_day(tz).await?,
        ai_response_ms: scoped.ai_response_ms().await?,
        messages_per_session,
        open_escalations: scoped.open_escalations().await?,
        escalations,
        csat: scoped.csat().await?,
        timezone: tz.name().to_owned(),
    })
}
