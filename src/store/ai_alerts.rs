//! AI-health alerts (SPEC §16): the thresholds admins set, and the
//! `ai.alert` outbox rows raised when one is crossed (once per threshold
//! and window, on however many nodes, by the row's idempotency key).

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::postgres::Db;

/// One threshold: `metric` over the last `minutes` above `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub metric: String,
    pub max: f64,
    pub minutes: i32,
}

pub async fn list(db: &Db) -> Result<Vec<Threshold>, StoreError> {
    let rows = db.get().await?.query("SELECT metric, max_value, minutes FROM ai_alert_thresholds ORDER BY metric", &[]).await?;
    Ok(rows.iter().map(|r| Threshold { metric: r.get(0), max: r.get(1), minutes: r.get(2) }).collect())
}

/// Replaces every threshold with `thresholds` (checked by the caller).
pub async fn replace(db: &Db, thresholds: &[Threshold]) -> Result<(), StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    tx.execute("DELETE FROM ai_alert_thresholds", &[]).await?;
    for t in thresholds {
        tx.execute("INSERT INTO ai_alert_thresholds (metric, max_value, minutes) VALUES ($1, $2, $3)", &[&t.metric, &t.max, &t.minutes]).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Queues an `ai.alert` under `key`; `false` if one with that key exists
/// (another node, or an earlier check, raised it already).
pub async fn raise(db: &Db, key: &str, payload: &serde_json::Value) -> Result<bool, StoreError> {
    let inserted = db
        .get()
        .await?
        .execute(
            "INSERT INTO outbox (event_type, payload, idempotency_key) VALUES ('ai.alert', $1, $2) ON CONFLICT (idempotency_key) DO NOTHING",
            &[payload, &key],
        )
        .await?;
    Ok(inserted == 1)
}
