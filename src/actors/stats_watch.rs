//! The dashboard's stats, computed once for every dashboard (issue #20).
//! Every `EVERY` this node runs the rollup job (`stats_rollups::refresh`:
//! one node at a time does the work), and when the rollups moved (on any
//! node) or `RECOUNT_AFTER` passed (time turns `in_progress` into
//! `incomplete` with nothing stored), computes the stats once per distinct
//! filter its dashboards asked for and pushes them as `stats` frames. Ten
//! staff looking at the same filters cost one computation, not ten polls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde_json::Value;
use tokio::sync::watch;

use super::hub::Hub;
use crate::domain::listing::SessionFilter;
use crate::outbound::{ConnId, Outbound};
use crate::protocol::StaffFrame;
use crate::store::{session_stats, stats_rollups};

/// How often the job runs and changes are looked for.
pub const EVERY: Duration = Duration::from_secs(1);
/// Stats are recomputed at least this often while anyone watches them.
const RECOUNT_AFTER: Duration = Duration::from_secs(60);

/// What one dashboard asked for: its filters as sent (echoed in each
/// frame, and the key dashboards with the same filters share).
struct Subscription {
    outbound: Outbound,
    key: String,
    filters: Value,
    filter: Arc<SessionFilter>,
}

/// The dashboards of this node that want stats pushed.
#[derive(Default)]
pub struct StatsSubscriptions(DashMap<ConnId, Subscription>);

impl StatsSubscriptions {
    /// From now on `outbound` gets the stats of `filter` (replacing what it
    /// asked for before). `filters` is what the dashboard sent.
    pub fn subscribe(&self, outbound: Outbound, filters: Value, filter: SessionFilter) {
        let key = filters.to_string();
        self.0.insert(outbound.id, Subscription { outbound, key, filters, filter: Arc::new(filter) });
    }

    pub fn unsubscribe(&self, conn: ConnId) {
        self.0.remove(&conn);
    }

    /// Each distinct filter once, with who asked for it.
    fn groups(&self) -> Vec<(Value, Arc<SessionFilter>, Vec<Outbound>)> {
        let mut groups: HashMap<String, (Value, Arc<SessionFilter>, Vec<Outbound>)> = HashMap::new();
        self.0.retain(|_, s| !s.outbound.is_gone());
        for entry in self.0.iter() {
            let s = entry.value();
            groups.entry(s.key.clone()).or_insert_with(|| (s.filters.clone(), s.filter.clone(), Vec::new())).2.push(s.outbound.clone());
        }
        groups.into_values().collect()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Runs until `stop` turns true.
pub async fn watch(hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    let tz = hub.config.timezone;
    let mut run: u64 = 0;
    let mut pushed: Option<(i64, Instant)> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.wait_for(|&down| down) => return,
        }
        run += 1;
        match stats_rollups::refresh(&hub.db, tz, run).await {
            Ok(stats_rollups::Refreshed::NotBuilt) => {
                if let Err(e) = stats_rollups::build(&hub.db, tz).await {
                    tracing::warn!(error = %e, "could not build the stats rollups");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not refresh the stats rollups"),
        }
        if hub.stats.is_empty() {
            pushed = None;
            continue;
        }
        let version = match stats_rollups::version(&hub.db).await {
            Ok(version) => version,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the stats rollups' version");
                continue;
            }
        };
        let due = pushed.is_none_or(|(last, at)| last != version || at.elapsed() >= RECOUNT_AFTER);
        if due {
            push(&hub).await;
            pushed = Some((version, Instant::now()));
        }
    }
}

/// Computes each distinct filter's stats once and sends them to its dashboards.
async fn push(hub: &Hub) {
    for (filters, filter, outbounds) in hub.stats.groups() {
        match session_stats::stats(&hub.db, &filter, hub.config.timezone, hub.config.inactive_after_hours).await {
            Ok(stats) => {
                let stats = serde_json::to_value(&stats).unwrap_or_default();
                let frame = StaffFrame::Stats { filters: &filters, stats: &stats }.encode();
                for outbound in outbounds {
                    outbound.send(frame.clone());
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not compute the dashboard's stats"),
        }
    }
}
