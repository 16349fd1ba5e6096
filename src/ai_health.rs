//! The AI's health over a sliding window (SPEC §16), kept in memory per
//! node and fed by the conversation actors as replies, timeouts, fallbacks,
//! errors, loops and stuck typing indicators happen, so a health request
//! never scans the messages table. Per-minute buckets for the last 24 h
//! (a fixed few hundred kilobytes, whatever the traffic); latencies go into
//! a histogram whose buckets grow by a quarter, so a percentile is the
//! upper bound of its bucket (within 25 %).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::domain::AiHealthReport as Report;

/// Longest window a report may cover, in minutes.
pub const MAX_WINDOW_MINUTES: u32 = 24 * 60;
/// Latency bucket bounds in ms: 1, 1.25, 1.56, … up to about two minutes.
const LATENCY_BUCKETS: usize = 54;
pub use crate::domain::AI_HEALTH_METRICS as METRICS;

/// Something the AI did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// An answer, after this long.
    Reply { latency_ms: u64 },
    /// No answer within `AGENT_TIMEOUT_SECS`.
    Timeout,
    /// The visitor got the fallback text instead of an answer.
    Fallback,
    /// The agent failed otherwise (transport, HTTP status, bad answer).
    Error,
    /// The same text three times in a row in one conversation.
    Loop,
    /// A typing indicator left on past `AGENT_TIMEOUT_SECS` without a message.
    StuckTyping,
}

#[derive(Clone)]
struct Minute {
    at: u64,
    replies: u64,
    timeouts: u64,
    fallbacks: u64,
    errors: u64,
    loops: u64,
    stuck_typing: u64,
    latency: [u32; LATENCY_BUCKETS],
}

impl Minute {
    fn new(at: u64) -> Self {
        Self { at, replies: 0, timeouts: 0, fallbacks: 0, errors: 0, loops: 0, stuck_typing: 0, latency: [0; LATENCY_BUCKETS] }
    }
}

/// The per-minute counters of the last 24 h.
#[derive(Default)]
pub struct AiHealth {
    minutes: Mutex<VecDeque<Minute>>,
}

fn now_minute() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 60).unwrap_or(0)
}

/// The upper bound of latency bucket `i`, in ms.
fn bucket_bound(i: usize) -> u64 {
    1.25f64.powi(i as i32).ceil() as u64
}

fn bucket_of(latency_ms: u64) -> usize {
    (0..LATENCY_BUCKETS).find(|&i| latency_ms <= bucket_bound(i)).unwrap_or(LATENCY_BUCKETS - 1)
}

impl AiHealth {
    pub fn record(&self, signal: Signal) {
        self.record_at(now_minute(), signal);
        let name = match signal {
            Signal::Reply { .. } => "reply",
            Signal::Timeout => "timeout",
            Signal::Fallback => "fallback",
            Signal::Error => "error",
            Signal::Loop => "loop",
            Signal::StuckTyping => "stuck_typing",
        };
        metrics::counter!("chathub_ai_signals_total", "signal" => name).increment(1);
    }

    fn record_at(&self, at: u64, signal: Signal) {
        let mut minutes = self.minutes.lock().expect("the health counters are never poisoned");
        if minutes.back().is_none_or(|m| m.at != at) {
            minutes.push_back(Minute::new(at));
            while minutes.front().is_some_and(|m| m.at + u64::from(MAX_WINDOW_MINUTES) <= at) {
                minutes.pop_front();
            }
        }
        let minute = minutes.back_mut().expect("just pushed");
        match signal {
            Signal::Reply { latency_ms } => {
                minute.replies += 1;
                minute.latency[bucket_of(latency_ms)] += 1;
            }
            Signal::Timeout => minute.timeouts += 1,
            Signal::Fallback => minute.fallbacks += 1,
            Signal::Error => minute.errors += 1,
            Signal::Loop => minute.loops += 1,
            Signal::StuckTyping => minute.stuck_typing += 1,
        }
    }

    /// The last `minutes` minutes (this one included), 1 to `MAX_WINDOW_MINUTES`.
    pub fn report(&self, minutes: u32) -> Report {
        self.report_at(now_minute(), minutes)
    }

    fn report_at(&self, now: u64, minutes: u32) -> Report {
        let minutes = minutes.clamp(1, MAX_WINDOW_MINUTES);
        let kept = self.minutes.lock().expect("the health counters are never poisoned");
        let mut report = Report { minutes, ..Default::default() };
        let mut latency = [0u64; LATENCY_BUCKETS];
        for m in kept.iter().filter(|m| m.at + u64::from(minutes) > now && m.at <= now) {
            report.replies += m.replies;
            report.timeouts += m.timeouts;
            report.fallbacks += m.fallbacks;
            report.errors += m.errors;
            report.loops += m.loops;
            report.stuck_typing += m.stuck_typing;
            for (total, n) in latency.iter_mut().zip(m.latency) {
                *total += u64::from(n);
            }
        }
        let percentile = |p: f64| -> Option<u64> {
            let count: u64 = latency.iter().sum();
            if count == 0 {
                return None;
            }
            let rank = ((count as f64) * p).ceil().max(1.0) as u64;
            let mut seen = 0;
            (0..LATENCY_BUCKETS).find(|&i| {
                seen += latency[i];
                seen >= rank
            })
            .map(bucket_bound)
        };
        report.latency_p50_ms = percentile(0.50);
        report.latency_p95_ms = percentile(0.95);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_only_its_minutes() {
        let health = AiHealth::default();
        health.record_at(100, Signal::Timeout);
        health.record_at(100, Signal::Fallback);
        health.record_at(109, Signal::Loop);
        health.record_at(110, Signal::Reply { latency_ms: 40 });
        let last_five = health.report_at(110, 5);
        assert_eq!((last_five.replies, last_five.loops, last_five.timeouts), (1, 1, 0));
        let last_fifteen = health.report_at(110, 15);
        assert_eq!((last_fifteen.timeouts, last_fifteen.fallbacks), (1, 1));
        assert_eq!(health.report_at(110, 1).loops, 0);
    }

    #[test]
    fn percentiles_come_from_the_histogram_within_a_quarter() {
        let health = AiHealth::default();
        for ms in 1..=100 {
            health.record_at(5, Signal::Reply { latency_ms: ms * 10 });
        }
        let report = health.report_at(5, 1);
        let (p50, p95) = (report.latency_p50_ms.unwrap(), report.latency_p95_ms.unwrap());
        assert!((500..=625).contains(&p50), "{p50}");
        assert!((950..=1188).contains(&p95), "{p95}");
        assert_eq!(AiHealth::default().report_at(5, 10).latency_p50_ms, None);
    }

    #[test]
    fn memory_stays_at_a_day_of_minutes() {
        let health = AiHealth::default();
        for at in 0..3 * u64::from(MAX_WINDOW_MINUTES) {
            health.record_at(at, Signal::Error);
        }
        assert_eq!(health.minutes.lock().unwrap().len(), MAX_WINDOW_MINUTES as usize);
    }
}
