//! Keeps the search indexes' GIN pending lists short: every `EVERY` this
//! node moves their pending entries into the indexes
//! (`session_search::flush_pending_entries`), on a connection of its own,
//! instead of leaving it to the conversation write that finds a list full
//! (which then waits 50-100 ms for the merge, and every write behind it).
//! With several nodes each does it; one finding the lists empty is cheap.

use std::time::Duration;

use tokio::sync::watch;

use crate::postgres::Db;
use crate::store::session_search;

/// How often the pending lists are flushed.
const EVERY: Duration = Duration::from_secs(1);

/// Runs until `stop` turns true. A failure is logged once and retried
/// every `EVERY` (PostgreSQL away, or an index owned by someone else).
pub async fn watch(db: Db, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.wait_for(|&down| down) => return,
        }
        match session_search::flush_pending_entries(&db).await {
            Ok(pages) => {
                failing = false;
                metrics::counter!("chathub_gin_pending_pages_flushed_total").increment(pages.max(0) as u64);
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "could not flush the search indexes' pending entries; inserts flush them when full");
            }
            Err(_) => {}
        }
    }
}
