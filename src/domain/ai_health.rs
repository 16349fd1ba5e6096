//! What the AI-health monitor reports (SPEC §16): the figures of a window,
//! as `GET /api/ai-health` and the dashboard's health card show them.

use serde::Serialize;

/// The metrics a report has and an alert may watch.
pub const AI_HEALTH_METRICS: &[&str] = &["replies", "latency_p50_ms", "latency_p95_ms", "timeouts", "fallbacks", "errors", "loops", "stuck_typing"];

/// What `GET /api/ai-health` answers.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AiHealthReport {
    pub minutes: u32,
    pub replies: u64,
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
    pub timeouts: u64,
    pub fallbacks: u64,
    pub errors: u64,
    pub loops: u64,
    pub stuck_typing: u64,
}

impl AiHealthReport {
    /// A metric by its name in `METRICS` (a missing percentile is 0).
    pub fn value(&self, metric: &str) -> Option<f64> {
        Some(match metric {
            "replies" => self.replies as f64,
            "latency_p50_ms" => self.latency_p50_ms.unwrap_or(0) as f64,
            "latency_p95_ms" => self.latency_p95_ms.unwrap_or(0) as f64,
            "timeouts" => self.timeouts as f64,
            "fallbacks" => self.fallbacks as f64,
            "errors" => self.errors as f64,
            "loops" => self.loops as f64,
            "stuck_typing" => self.stuck_typing as f64,
            _ => return None,
        })
    }
}

