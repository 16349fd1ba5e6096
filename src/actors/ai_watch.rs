//! Watching the AI's health (SPEC §16): every `AI_HEALTH_CHECK_SECS` this
//! node pushes its health card (the last 15 minutes) to its dashboards and
//! checks the admins' thresholds. A threshold crossed raises one `ai.alert`
//! outbox row per threshold and window (its idempotency key names both, so
//! several nodes or checks raise it once) and a dashboard alert.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::hub::Hub;
use crate::domain::AiHealthReport;
use crate::protocol::StaffFrame;
use crate::store::ai_alerts::{self, Threshold};

/// The window of the dashboard's health card.
pub const CARD_MINUTES: u32 = 15;

/// Runs until `stop` turns true.
pub async fn watch(hub: Arc<Hub>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut last_card: Option<AiHealthReport> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|&down| down) => return,
        }
        let card = hub.ai_health.report(CARD_MINUTES);
        if last_card.as_ref() != Some(&card) {
            hub.supervisor.to_all_dashboards(StaffFrame::AiHealth { health: &card }.encode());
            last_card = Some(card);
        }
        if let Err(e) = check(&hub).await {
            tracing::warn!(error = %e, "could not check the AI-health thresholds");
        }
    }
}

async fn check(hub: &Hub) -> Result<(), crate::store::StoreError> {
    for threshold in ai_alerts::list(&hub.db).await? {
        let report = hub.ai_health.report(threshold.minutes.max(1) as u32);
        let Some(value) = report.value(&threshold.metric) else { continue };
        if value <= threshold.max {
            continue;
        }
        if ai_alerts::raise(&hub.db, &alert_key(&threshold), &payload(&threshold, value, &report, hub)).await? {
            tracing::warn!(metric = %threshold.metric, value, max = threshold.max, minutes = threshold.minutes, "AI-health threshold crossed");
            hub.notifier.wake();
            let frame = StaffFrame::AiAlert { metric: &threshold.metric, value, max: threshold.max, minutes: threshold.minutes };
            hub.supervisor.to_all_dashboards(frame.encode());
        }
    }
    Ok(())
}

/// One alert per threshold per window: the key names the metric, its
/// limit and the window the crossing fell in.
fn alert_key(t: &Threshold) -> String {
    let window_secs = i64::from(t.minutes.max(1)) * 60;
    let window = chrono::Utc::now().timestamp() / window_secs;
    format!("ai.alert/{}/{}/{}m/{window}", t.metric, t.max, t.minutes)
}

fn payload(t: &Threshold, value: f64, report: &AiHealthReport, hub: &Hub) -> serde_json::Value {
    json!({ "metric": t.metric, "value": value, "max": t.max, "minutes": t.minutes, "health": report, "node": hub.cluster().map(|c| c.node_id().to_owned()) })
}
