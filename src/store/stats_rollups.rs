//! The dashboard's stats from rollups (issue #20), exact and without
//! scanning everything ever stored.
//!
//! - **Sessions** are counted in `session_rollups`: per local day of creation
//!   (in `TIMEZONE`) and per value of every dimension the stats filter or
//!   group by. A job (`refresh`, every second on one node at a time) rewrites
//!   the days whose sessions changed since its last run, found through the
//!   activity and `updated_at` indexes, and deleted sessions' days through
//!   `stats_dirty`. It looks back `OVERLAP` before its last run for
//!   transactions still committing then, and re-checks the day it rewrote
//!   longest ago every `RECHECK_EVERY` runs, so whatever it missed heals.
//! - **Reads are exact without waiting for the job** (`cells`): days that
//!   changed since the job's last run are counted straight from `sessions`,
//!   the others from the rollups, and the partial days at the ends of a
//!   range that does not start and end at local midnights straight from
//!   `sessions` too. Time-derived completion (`in_progress` until
//!   `INACTIVE_AFTER_HOURS` after the last activity, then `incomplete`) is
//!   never stored: the sessions still in progress are the recently active
//!   ones, counted through the activity index, and subtracted from the
//!   not-completed counts.
//! - **AI response times** are counted in `ai_latency_rollups` in the very
//!   transaction that stores each reply (`ReplyCounts`), per local day of
//!   the reply, channel and latency bucket: exact below 100 ms, 1 % wide
//!   above, so a percentile read from them is within 1 % of the exact one.
//!   They describe the agent over the range and channel: the other filters
//!   (status, QA, rating, completion, site, search) do not narrow them.
//! - A search (`q`) has no rollup: its stats are counted from `sessions`.
//!
//! The first start on a database (or after `TIMEZONE` changed) builds both
//! rollups a day at a time (`build`), logging as it goes; until it has, reads
//! count from `sessions` and `messages` as before. Setting
//! `stats_rollup_state.timezone` to NULL has the job rebuild them (after
//! rows were written behind the hub's back, say).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

use super::StoreError;
use super::session_filter::{Params, channel_clause, dimension_clauses, where_clause};
use crate::domain::Completion;
use crate::domain::listing::{SessionFilter, start_of_day};
use crate::postgres::Db;

/// How far before its last run the job and the reads look for changes: a
/// change is stamped when its transaction starts (or, for a message, when
/// the conversation took it), and may commit this much later.
pub const OVERLAP: Duration = Duration::seconds(30);
/// The job re-checks the day it rewrote longest ago once every this many runs.
pub const RECHECK_EVERY: u64 = 10;
/// Held by the node refreshing or building the rollups.
const LOCK_KEY: i64 = 0x6368_6174_7374_61; // "chatsta"

/// One group of sessions: the dimensions stats group and filter by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cell {
    pub day: NaiveDate,
    pub channel: String,
    pub status: String,
    pub qa_status: String,
    pub csat: Option<i16>,
    pub completed_day: Option<NaiveDate>,
}

/// How many sessions a cell holds, and their messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub sessions: i64,
    pub messages: i64,
}

impl Count {
    fn add(&mut self, other: Count, sign: i64) {
        self.sessions += sign * other.sessions;
        self.messages += sign * other.messages;
    }
}

/// The filtered sessions as cells, each with its completion state.
pub type Tally = Vec<(Cell, Completion, Count)>;

/// A latency's bucket: the milliseconds themselves below 100, then buckets
/// 1 % wide.
pub fn latency_bucket(ms: i32) -> i32 {
    let ms = ms.max(0);
    if ms < 100 { ms } else { 100 + ((f64::from(ms) / 100.0).ln() / 1.01f64.ln()).floor() as i32 }
}

/// The milliseconds a bucket spans, `[low, high)`.
fn bucket_span(bucket: i32) -> (f64, f64) {
    if bucket < 100 {
        return (f64::from(bucket), f64::from(bucket));
    }
    let low = 100.0 * 1.01f64.powi(bucket - 100);
    (low, low * 1.01)
}

/// `percentile_cont(p)` over a histogram of `(bucket, replies)` sorted by
/// bucket: exact for values below 100 ms, interpolated within a bucket above.
pub fn percentile(histogram: &[(i32, i64)], p: f64) -> Option<f64> {
    let total: i64 = histogram.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    // The value of the k-th reply (from 0) in order.
    let value_at = |k: i64| {
        let mut before = 0;
        for &(bucket, n) in histogram {
            if k < before + n {
                let (low, high) = bucket_span(bucket);
                return low + (high - low) * ((k - before) as f64 + 0.5) / n as f64;
            }
            before += n;
        }
        bucket_span(histogram.last().map_or(0, |h| h.0)).1
    };
    let rank = p * (total - 1) as f64;
    let (below, above) = (rank.floor() as i64, rank.ceil() as i64);
    let (low, high) = (value_at(below), value_at(above));
    Some(low + (rank - below as f64) * (high - low))
}

/// Adds a batch's AI replies to `ai_latency_rollups` (`ReplyCounts`'
/// parameters), in the transaction that stores them.
pub const REPLY_COUNTS_UPSERT: &str = "INSERT INTO ai_latency_rollups (day, channel, bucket, replies)
     SELECT * FROM unnest($1::date[], $2::text[], $3::int4[], $4::int8[])
     ON CONFLICT (day, channel, bucket) DO UPDATE SET replies = ai_latency_rollups.replies + excluded.replies";

/// AI replies counted per (local day, channel, latency bucket), in key
/// order, so two batches lock the rows they share in the same order.
pub struct ReplyCounts {
    days: Vec<NaiveDate>,
    channels: Vec<String>,
    buckets: Vec<i32>,
    counts: Vec<i64>,
}

impl ReplyCounts {
    /// The counts of `replies` (reply time, channel, latency); `None` if there are none.
    pub fn of<'a>(tz: Tz, replies: impl Iterator<Item = (DateTime<Utc>, &'a str, i32)>) -> Option<Self> {
        let mut grouped: std::collections::BTreeMap<(NaiveDate, &str, i32), i64> = Default::default();
        for (at, channel, ms) in replies {
            *grouped.entry((at.with_timezone(&tz).date_naive(), channel, latency_bucket(ms))).or_default() += 1;
        }
        if grouped.is_empty() {
            return None;
        }
        let mut counts = Self { days: Vec::new(), channels: Vec::new(), buckets: Vec::new(), counts: Vec::new() };
        for ((day, channel, bucket), n) in grouped {
            counts.days.push(day);
            counts.channels.push(channel.to_owned());
            counts.buckets.push(bucket);
            counts.counts.push(n);
        }
        Some(counts)
    }

    /// The parameters of `REPLY_COUNTS_UPSERT`.
    pub fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 4] {
        [&self.days, &self.channels, &self.buckets, &self.counts]
    }
}

/// Before sessions are deleted, in the same transaction: their days are
/// rewritten by the next refresh, and their AI replies leave the latency
/// counts.
pub async fn forget_sessions(tx: &deadpool_postgres::Transaction<'_>, tz: Tz, ids: &[Uuid]) -> Result<(), StoreError> {
    tx.execute("INSERT INTO stats_dirty (created_at) SELECT created_at FROM sessions WHERE id = ANY($1)", &[&ids]).await?;
    let replies: Vec<(DateTime<Utc>, String, i32)> = tx
        .query(
            "SELECT created_at, channel, latency_ms FROM messages WHERE session_id = ANY($1) AND role = 'ai' AND latency_ms IS NOT NULL",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    if let Some(counts) = ReplyCounts::of(tz, replies.iter().map(|(at, c, ms)| (*at, c.as_str(), *ms))) {
        tx.execute(
            "UPDATE ai_latency_rollups r SET replies = r.replies - d.n
             FROM unnest($1::date[], $2::text[], $3::int4[], $4::int8[]) AS d(day, channel, bucket, n)
             WHERE r.day = d.day AND r.channel = d.channel AND r.bucket = d.bucket",
            &counts.params(),
        )
        .await?;
        tx.execute("UPDATE stats_rollup_state SET latency_epoch = latency_epoch + 1", &[]).await?;
    }
    Ok(())
}

/// What a refresh did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refreshed {
    /// Another node holds the job.
    Skipped,
    /// The rollups are not built for this `TIMEZONE` (`build` them).
    NotBuilt,
    /// Nothing changed since the last run.
    Unchanged,
    /// Something changed: this many days were rewritten.
    Changed(usize),
}

/// The rollups' state.
struct State {
    timezone: Option<String>,
    watermark: Option<DateTime<Utc>>,
    /// Moves whenever the latency counts of a past day change.
    latency_epoch: i64,
}

async fn state(client: &tokio_postgres::Client) -> Result<State, StoreError> {
    let row = client.query_one("SELECT timezone, watermark, latency_epoch FROM stats_rollup_state", &[]).await?;
    Ok(State { timezone: row.get(0), watermark: row.get(1), latency_epoch: row.get(2) })
}

impl State {
    fn built_for(&self, tz: Tz) -> Option<DateTime<Utc>> {
        self.watermark.filter(|_| self.timezone.as_deref() == Some(tz.name()))
    }
}

/// The local days whose sessions changed at or after `since`, with the
/// latest change of each.
async fn session_changes(
    client: &impl tokio_postgres::GenericClient,
    tz: Tz,
    since: DateTime<Utc>,
) -> Result<HashMap<NaiveDate, DateTime<Utc>>, StoreError> {
    let rows = client
        .query(
            "SELECT (created_at AT TIME ZONE $1::text)::date,
                    max(GREATEST(COALESCE(last_message_at, created_at), updated_at))
             FROM sessions WHERE COALESCE(last_message_at, created_at) >= $2 OR updated_at >= $2 GROUP BY 1",
            &[&tz.name(), &since],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The local days of deleted sessions the job has not rewritten yet.
async fn deleted_days(client: &tokio_postgres::Client, tz: Tz) -> Result<Vec<NaiveDate>, StoreError> {
    let rows = client.query("SELECT DISTINCT (created_at AT TIME ZONE $1::text)::date FROM stats_dirty", &[&tz.name()]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Rewrites one day of `session_rollups` from `sessions`.
async fn rewrite_day(tx: &deadpool_postgres::Transaction<'_>, tz: Tz, day: NaiveDate) -> Result<(), StoreError> {
    let (start, end) = day_span(day, tz);
    tx.execute("DELETE FROM session_rollups WHERE day = $1", &[&day]).await?;
    tx.execute(
        "INSERT INTO session_rollups (day, site_id, channel, status, qa_status, csat_score, completed_day, sessions, messages)
         SELECT $1::date, site_id, channel, status, qa_status, csat_score, (completed_at AT TIME ZONE $4::text)::date,
                count(*), sum(last_seq)::int8
         FROM sessions WHERE created_at >= $2 AND created_at < $3 AND last_seq > 0
         GROUP BY 2, 3, 4, 5, 6, 7",
        &[&day, &start, &end, &tz.name()],
    )
    .await?;
    tx.execute(
        "INSERT INTO session_rollup_days (day, computed_at) VALUES ($1, now())
         ON CONFLICT (day) DO UPDATE SET computed_at = now()",
        &[&day],
    )
    .await?;
    Ok(())
}

/// A local day as instants, `[start, end)`.
fn day_span(day: NaiveDate, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    (start_of_day(day, tz), start_of_day(day.succ_opt().unwrap_or(day), tz))
}

/// One run of the job: rewrites the days changed since the last run (and,
/// on every `RECHECK_EVERY`th run, the day rewritten longest ago). One node
/// at a time; the others skip.
pub async fn refresh(db: &Db, tz: Tz, run: u64) -> Result<Refreshed, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    if !tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&LOCK_KEY]).await?.get::<_, bool>(0) {
        return Ok(Refreshed::Skipped);
    }
    let row = tx.query_one("SELECT timezone, watermark, latency_epoch, now() FROM stats_rollup_state FOR UPDATE", &[]).await?;
    let state = State { timezone: row.get(0), watermark: row.get(1), latency_epoch: row.get(2) };
    let started: DateTime<Utc> = row.get(3);
    let Some(watermark) = state.built_for(tz) else { return Ok(Refreshed::NotBuilt) };
    // Taken first: a deletion committing after this statement stays for
    // the next run.
    let deleted: Vec<NaiveDate> = tx
        .query("DELETE FROM stats_dirty RETURNING (created_at AT TIME ZONE $1::text)::date", &[&tz.name()])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let changed = session_changes(&*tx, tz, watermark - OVERLAP).await?;
    // A session's activity may be stored up to `ACTIVITY_GRAIN` before its
    // last message (`conversation_writes::COUNTER_UPDATE`).
    let grain = super::conversation_writes::ACTIVITY_GRAIN;
    let fresh = !deleted.is_empty() || changed.values().any(|&latest| latest + grain >= watermark);
    let mut days: HashSet<NaiveDate> = changed.into_keys().chain(deleted).collect();
    if run % RECHECK_EVERY == 0 {
        if let Some(row) = tx.query_opt("SELECT day FROM session_rollup_days ORDER BY computed_at LIMIT 1", &[]).await? {
            days.insert(row.get(0));
        }
    }
    for &day in &days {
        rewrite_day(&tx, tz, day).await?;
    }
    tx.execute(
        "UPDATE stats_rollup_state SET watermark = $1, version = version + $2::int8",
        &[&started, &i64::from(fresh)],
    )
    .await?;
    tx.commit().await?;
    Ok(if fresh { Refreshed::Changed(days.len()) } else { Refreshed::Unchanged })
}

/// The rollups' version: it moves whenever a refresh found a change.
pub async fn version(db: &Db) -> Result<i64, StoreError> {
    Ok(db.get().await?.query_one("SELECT version FROM stats_rollup_state", &[]).await?.get(0))
}

/// Builds both rollups a day at a time if they are not built for `tz` (the
/// first start on a database, or `TIMEZONE` changed). Reads only from
/// `sessions` and `messages`, so writes go on; each day's latency counts
/// are rebuilt with their table briefly locked against the replies being
/// counted meanwhile. Returns the days built (0: nothing to do).
pub async fn build(db: &Db, tz: Tz) -> Result<usize, StoreError> {
    // Held on this connection (a session lock) for the whole build.
    let lock = db.get().await?;
    while !lock.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY]).await?.get::<_, bool>(0) {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let built = build_locked(db, tz).await;
    let _ = lock.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    built
}

async fn build_locked(db: &Db, tz: Tz) -> Result<usize, StoreError> {
    let mut client = db.get().await?;
    if state(&client).await?.built_for(tz).is_some() {
        return Ok(0);
    }
    let started = std::time::Instant::now();
    let began: DateTime<Utc> = client.query_one("SELECT now()", &[]).await?.get(0);
    let span = client
        .query_one(
            "SELECT LEAST((SELECT min(created_at) FROM sessions), (SELECT min(created_at) FROM messages)),
                    GREATEST((SELECT max(created_at) FROM sessions), (SELECT max(created_at) FROM messages))",
            &[],
        )
        .await?;
    tracing::info!(timezone = tz.name(), "building the stats rollups (writes continue meanwhile)");
    let mut days = 0;
    if let (Some(first), Some(last)) = (span.get::<_, Option<DateTime<Utc>>>(0), span.get::<_, Option<DateTime<Utc>>>(1)) {
        let (first, last) = (first.with_timezone(&tz).date_naive(), last.max(began).with_timezone(&tz).date_naive());
        let tx = client.transaction().await?;
        tx.batch_execute("DELETE FROM session_rollups; DELETE FROM session_rollup_days; DELETE FROM stats_dirty").await?;
        tx.commit().await?;
        let mut day = last;
        while day >= first {
            let tx = client.transaction().await?;
            rewrite_day(&tx, tz, day).await?;
            rebuild_latency_day(&tx, tz, day).await?;
            tx.commit().await?;
            days += 1;
            if days % 30 == 0 {
                tracing::info!(days, through = %day, "stats rollups: built so far");
            }
            day = day.pred_opt().unwrap_or(NaiveDate::MIN);
        }
    }
    client
        .execute(
            "UPDATE stats_rollup_state SET timezone = $1, watermark = $2, version = version + 1, latency_epoch = latency_epoch + 1",
            &[&tz.name(), &began],
        )
        .await?;
    tracing::info!(days, seconds = started.elapsed().as_secs_f64(), "stats rollups built");
    Ok(days)
}

async fn rebuild_latency_day(tx: &deadpool_postgres::Transaction<'_>, tz: Tz, day: NaiveDate) -> Result<(), StoreError> {
    let (start, end) = day_span(day, tz);
    // Replies being stored now wait for this day's few milliseconds, so
    // each is counted once: by this rebuild or by its own transaction.
    tx.batch_execute("LOCK TABLE ai_latency_rollups IN SHARE ROW EXCLUSIVE MODE").await?;
    tx.execute("DELETE FROM ai_latency_rollups WHERE day = $1", &[&day]).await?;
    let replies: Vec<(DateTime<Utc>, String, i32)> = tx
        .query(
            "SELECT created_at, channel, latency_ms FROM messages
             WHERE created_at >= $1 AND created_at < $2 AND role = 'ai' AND latency_ms IS NOT NULL",
            &[&start, &end],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    if let Some(counts) = ReplyCounts::of(tz, replies.iter().map(|(at, c, ms)| (*at, c.as_str(), *ms))) {
        tx.execute(REPLY_COUNTS_UPSERT, &counts.params()).await?;
    }
    Ok(())
}

/// The filtered sessions as cells with their completion states: exact, from
/// the rollups where they are current and from `sessions` where not (see
/// the module doc).
pub async fn cells(db: &Db, filter: &SessionFilter, tz: Tz, inactive_after_hours: u32) -> Result<Tally, StoreError> {
    // Both reads at once, each on its own connection.
    let (all, in_progress) = futures_util::try_join!(
        async {
            // Only the sessions in progress are wanted: the rest need not be read.
            if filter.completion == Some(Completion::InProgress) {
                return Ok(HashMap::new());
            }
            current_cells(&*db.get().await?, filter, tz, inactive_after_hours).await
        },
        async {
            // The not-completed sessions active within the threshold are in progress.
            let mut in_progress = HashMap::new();
            if filter.completion != Some(Completion::Complete) {
                let recent = SessionFilter { completion: Some(Completion::InProgress), ..filter.clone() };
                add_direct(&*db.get().await?, &recent, tz, inactive_after_hours, None, &mut in_progress).await?;
            }
            Ok::<_, StoreError>(in_progress)
        },
    )?;
    let mut tally = Tally::new();
    for (cell, mut count) in all {
        let state = if cell.completed_day.is_some() {
            Completion::Complete
        } else {
            if let Some(active) = in_progress.get(&cell) {
                count.add(*active, -1);
            }
            Completion::Incomplete
        };
        if count.sessions > 0 && filter.completion.is_none_or(|wanted| wanted == state) {
            tally.push((cell, state, count));
        }
    }
    if filter.completion.is_none_or(|wanted| wanted == Completion::InProgress) {
        tally.extend(in_progress.into_iter().filter(|(_, n)| n.sessions > 0).map(|(cell, n)| (cell, Completion::InProgress, n)));
    }
    Ok(tally)
}

/// How many sessions match a filter (the list's `total`).
pub async fn count(db: &Db, filter: &SessionFilter, tz: Tz, inactive_after_hours: u32) -> Result<i64, StoreError> {
    if filter.completion.is_some() {
        return Ok(cells(db, filter, tz, inactive_after_hours).await?.iter().map(|(_, _, n)| n.sessions).sum());
    }
    let client = db.get().await?;
    Ok(current_cells(&client, filter, tz, inactive_after_hours).await?.values().map(|n| n.sessions).sum())
}

/// The filtered sessions' cells, completion aside: from the rollups where
/// they are current, else from `sessions`.
async fn current_cells(
    client: &tokio_postgres::Client,
    filter: &SessionFilter,
    tz: Tz,
    inactive_after_hours: u32,
) -> Result<HashMap<Cell, Count>, StoreError> {
    let built = state(client).await?.built_for(tz);
    let mut all: HashMap<Cell, Count> = HashMap::new();
    match built.filter(|_| filter.search.is_none()) {
        None => add_direct(client, filter, tz, inactive_after_hours, None, &mut all).await?,
        Some(watermark) => {
            let range = Range::of(filter, tz);
            let mut changed: HashSet<NaiveDate> = session_changes(client, tz, watermark - OVERLAP).await?.into_keys().collect();
            changed.extend(deleted_days(client, tz).await?);
            let changed: Vec<NaiveDate> = changed.into_iter().filter(|d| range.covers(*d)).collect();
            add_rollups(client, filter, &range, &changed, &mut all).await?;
            for span in range.edges.iter().copied().chain(changed.iter().map(|&d| day_span(d, tz))) {
                add_direct(client, filter, tz, inactive_after_hours, Some(span), &mut all).await?;
            }
        }
    }
    Ok(all)
}

/// The whole local days of a filter's range (from `first`, before `end`;
/// `None`: unbounded) and the partial days at its ends, as instants.
struct Range {
    first: Option<NaiveDate>,
    end: Option<NaiveDate>,
    edges: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Range {
    fn of(filter: &SessionFilter, tz: Tz) -> Self {
        let local = |at: DateTime<Utc>| at.with_timezone(&tz).date_naive();
        let mut edges = Vec::new();
        let first = filter.from.map(|from| {
            let day = local(from);
            if start_of_day(day, tz) == from { day } else { day.succ_opt().unwrap_or(day) }
        });
        let end = filter.until.map(|until| local(until));
        match (filter.from, filter.until, first, end) {
            (Some(from), Some(until), Some(first), Some(end)) if first > end => {
                // Within one day: no whole day at all.
                edges.push((from, until));
                return Self { first: Some(first), end: Some(first), edges };
            }
            _ => {}
        }
        if let (Some(from), Some(first)) = (filter.from, first) {
            if start_of_day(first, tz) > from {
                edges.push((from, start_of_day(first, tz)));
            }
        }
        if let (Some(until), Some(end)) = (filter.until, end) {
            if start_of_day(end, tz) < until {
                edges.push((start_of_day(end, tz).max(filter.from.unwrap_or(DateTime::<Utc>::MIN_UTC)), until));
            }
        }
        Self { first, end, edges }
    }

    fn covers(&self, day: NaiveDate) -> bool {
        self.first.is_none_or(|f| day >= f) && self.end.is_none_or(|e| day < e)
    }
}

/// Adds the rollups' cells of the whole days in `range`, but for `skip`.
async fn add_rollups(
    client: &tokio_postgres::Client,
    filter: &SessionFilter,
    range: &Range,
    skip: &[NaiveDate],
    cells: &mut HashMap<Cell, Count>,
) -> Result<(), StoreError> {
    let mut params = Params::default();
    let mut clauses = vec![format!("r.day <> ALL({}::date[])", params.push(skip.to_vec()))];
    if let Some(first) = range.first {
        clauses.push(format!("r.day >= {}", params.push(first)));
    }
    if let Some(end) = range.end {
        clauses.push(format!("r.day < {}", params.push(end)));
    }
    clauses.extend(dimension_clauses(filter, "r.", &mut params));
    if filter.completion == Some(Completion::Complete) {
        clauses.push("r.completed_day IS NOT NULL".into());
    }
    let sql = format!(
        "SELECT r.day, r.channel, r.status, r.qa_status, r.csat_score, r.completed_day, sum(r.sessions)::int8, sum(r.messages)::int8
         FROM session_rollups r WHERE {} GROUP BY 1, 2, 3, 4, 5, 6",
        clauses.join(" AND ")
    );
    add_rows(client.query(&sql, &params.refs()).await?, cells);
    Ok(())
}

/// Adds the cells of the filtered sessions counted straight from `sessions`
/// (within `span` if given, else the filter's own range).
async fn add_direct(
    client: &tokio_postgres::Client,
    filter: &SessionFilter,
    tz: Tz,
    inactive_after_hours: u32,
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    cells: &mut HashMap<Cell, Count>,
) -> Result<(), StoreError> {
    let narrowed;
    let filter = match span {
        Some((from, until)) => {
            narrowed = SessionFilter { from: Some(from), until: Some(until), ..filter.clone() };
            &narrowed
        }
        None => filter,
    };
    let mut params = Params::default();
    let condition = where_clause(filter, inactive_after_hours, &mut params);
    let zone = params.push(tz.name().to_owned());
    let sql = format!(
        "SELECT (s.created_at AT TIME ZONE {zone}::text)::date, s.channel, s.status, s.qa_status, s.csat_score,
                (s.completed_at AT TIME ZONE {zone}::text)::date, count(*), sum(s.last_seq)::int8
         FROM sessions s WHERE {condition} GROUP BY 1, 2, 3, 4, 5, 6"
    );
    add_rows(client.query(&sql, &params.refs()).await?, cells);
    Ok(())
}

fn add_rows(rows: Vec<tokio_postgres::Row>, cells: &mut HashMap<Cell, Count>) {
    for row in rows {
        let cell = Cell {
            day: row.get(0),
            channel: row.get(1),
            status: row.get(2),
            qa_status: row.get(3),
            csat: row.get(4),
            completed_day: row.get(5),
        };
        cells.entry(cell).or_default().add(Count { sessions: row.get(6), messages: row.get(7) }, 1);
    }
}

/// The AI replies in the filter's range (and channel) as a latency
/// histogram: `(bucket, replies)` by bucket. While the rollups are being
/// built, straight from `messages`.
///
/// The settled days (before yesterday, where no reply is still being
/// stored) are summed once per node and kept until `latency_epoch` moves:
/// at 1M sessions they are 76,000 rows, most of a stats read's time.
pub async fn latency_histogram(db: &Db, filter: &SessionFilter, tz: Tz) -> Result<Vec<(i32, i64)>, StoreError> {
    let client = db.get().await?;
    let state = state(&client).await?;
    let mut histogram: HashMap<i32, i64> = HashMap::new();
    if state.built_for(tz).is_none() {
        add_replies(&client, filter, filter.from, filter.until, &mut histogram).await?;
    } else {
        let range = Range::of(filter, tz);
        let yesterday = Utc::now().with_timezone(&tz).date_naive().pred_opt().unwrap_or(NaiveDate::MIN);
        let settled_end = range.end.map_or(yesterday, |end| end.min(yesterday));
        let key = SettledKey { tz, channel: filter.channel.map(|c| c.as_str()), first: range.first, end: settled_end };
        let kept = SETTLED.lock().ok().and_then(|kept| kept.get(&key).filter(|(epoch, _)| *epoch == state.latency_epoch).map(|(_, h)| h.clone()));
        histogram = match kept {
            Some(settled) => settled,
            None => {
                let settled = rollup_replies(&client, filter, range.first, Some(settled_end)).await?;
                if let Ok(mut kept) = SETTLED.lock() {
                    if kept.len() >= SETTLED_KEPT {
                        kept.clear();
                    }
                    kept.insert(key, (state.latency_epoch, settled.clone()));
                }
                settled
            }
        };
        let recent_first = range.first.map_or(settled_end, |first| first.max(settled_end));
        if range.end.is_none_or(|end| recent_first < end) {
            for (bucket, n) in rollup_replies(&client, filter, Some(recent_first), range.end).await? {
                *histogram.entry(bucket).or_default() += n;
            }
        }
        for &(from, until) in &range.edges {
            add_replies(&client, filter, Some(from), Some(until), &mut histogram).await?;
        }
    }
    let mut histogram: Vec<(i32, i64)> = histogram.into_iter().filter(|(_, n)| *n > 0).collect();
    histogram.sort();
    Ok(histogram)
}

/// Which settled days' latency counts, for which channel filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SettledKey {
    tz: Tz,
    channel: Option<&'static str>,
    first: Option<NaiveDate>,
    end: NaiveDate,
}

/// Replies by latency bucket.
type Histogram = HashMap<i32, i64>;

/// Settled days' latency counts this node has summed, with the epoch they
/// were summed at; at most `SETTLED_KEPT` ranges.
static SETTLED: std::sync::LazyLock<std::sync::Mutex<HashMap<SettledKey, (i64, Histogram)>>> = std::sync::LazyLock::new(Default::default);
const SETTLED_KEPT: usize = 64;

/// The latency rollups of the filter's channel over the days `[first, end)`.
async fn rollup_replies(
    client: &tokio_postgres::Client,
    filter: &SessionFilter,
    first: Option<NaiveDate>,
    end: Option<NaiveDate>,
) -> Result<Histogram, StoreError> {
    let mut params = Params::default();
    let mut clauses = vec![channel_clause(filter, "", &mut params)];
    if let Some(first) = first {
        clauses.push(format!("day >= {}", params.push(first)));
    }
    if let Some(end) = end {
        clauses.push(format!("day < {}", params.push(end)));
    }
    let sql = format!("SELECT bucket, sum(replies)::int8 FROM ai_latency_rollups WHERE {} GROUP BY 1", clauses.join(" AND "));
    Ok(client.query(&sql, &params.refs()).await?.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Adds the filter's channel's AI replies stored in `[from, until)` to
/// `histogram`, straight from `messages`.
async fn add_replies(
    client: &tokio_postgres::Client,
    filter: &SessionFilter,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    histogram: &mut HashMap<i32, i64>,
) -> Result<(), StoreError> {
    let mut params = Params::default();
    let mut clauses = vec!["role = 'ai'".to_owned(), "latency_ms IS NOT NULL".to_owned(), channel_clause(filter, "", &mut params)];
    if let Some(from) = from {
        clauses.push(format!("created_at >= {}", params.push(from)));
    }
    if let Some(until) = until {
        clauses.push(format!("created_at < {}", params.push(until)));
    }
    let sql = format!("SELECT latency_ms FROM messages WHERE {}", clauses.join(" AND "));
    for row in client.query(&sql, &params.refs()).await? {
        *histogram.entry(latency_bucket(row.get(0))).or_default() += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_100_ms_and_1_percent_wide_above() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(-5), 0);
        assert_eq!(latency_bucket(99), 99);
        assert_eq!(latency_bucket(100), 100);
        for ms in [100, 101, 150, 999, 1_000, 2_345, 60_000, 1_000_000] {
            let (low, high) = bucket_span(latency_bucket(ms));
            assert!(low <= f64::from(ms) + 1e-9 && f64::from(ms) < high + 1e-9, "{ms} in [{low}, {high})");
            assert!(high / low <= 1.0101);
        }
    }

    /// The percentile of a histogram is percentile_cont's within 1 %.
    #[test]
    fn percentiles_match_percentile_cont_within_a_bucket() {
        let exact = |values: &mut Vec<i32>, p: f64| {
            values.sort();
            let rank = p * (values.len() - 1) as f64;
            let (lo, hi) = (values[rank.floor() as usize], values[rank.ceil() as usize]);
            f64::from(lo) + (rank - rank.floor()) * f64::from(hi - lo)
        };
        let mut values: Vec<i32> = (0..5_000).map(|i| 200 + (i * 7919) % 3000).collect();
        let mut histogram: HashMap<i32, i64> = HashMap::new();
        for &v in &values {
            *histogram.entry(latency_bucket(v)).or_default() += 1;
        }
        let mut histogram: Vec<_> = histogram.into_iter().collect();
        histogram.sort();
        for p in [0.5, 0.9] {
            let (want, got) = (exact(&mut values, p), percentile(&histogram, p).unwrap());
            assert!((got - want).abs() / want < 0.01, "p{p}: {got} vs {want}");
        }
        // Below 100 ms every value is its own bucket: exact.
        let mut small = vec![0, 0, 1, 3, 7, 7, 40];
        let histogram = vec![(0, 2), (1, 1), (3, 1), (7, 2), (40, 1)];
        assert_eq!(percentile(&histogram, 0.5), Some(exact(&mut small, 0.5)));
        assert_eq!(percentile(&histogram, 0.9), Some(exact(&mut small, 0.9)));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
