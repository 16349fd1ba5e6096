//! Results: latency histograms, error counts, server CPU and memory, printed
//! as a table and optionally written as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

/// A latency histogram in microseconds, from 1 µs to 10 minutes.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Self { count: h.len(), p50_ms: ms(0.5), p90_ms: ms(0.9), p95_ms: ms(0.95), p99_ms: ms(0.99), p999_ms: ms(0.999), max_ms: h.max() as f64 / 1000.0 }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    pub params: Value,
    pub duration_secs: f64,
    pub achieved_rate: f64,
    pub latencies: BTreeMap<String, Percentiles>,
    pub errors: BTreeMap<String, u64>,
    pub figures: BTreeMap<String, f64>,
}

impl Report {
    pub fn print(&self) {
        println!("\n== {} ==  {}", self.scenario, self.params);
        println!("duration {:.1} s, achieved rate {:.0}/s", self.duration_secs, self.achieved_rate);
        if !self.latencies.is_empty() {
            println!("{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}", "latency (ms)", "count", "p50", "p90", "p95", "p99", "p99.9", "max");
            for (name, p) in &self.latencies {
                println!(
                    "{:<22} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                    name, p.count, p.p50_ms, p.p90_ms, p.p95_ms, p.p99_ms, p.p999_ms, p.max_ms
                );
            }
        }
        for (name, value) in &self.figures {
            println!("{name:<40} {value:>14.2}");
        }
        if self.errors.is_empty() {
            println!("errors: none");
        } else {
            println!("errors: {:?}", self.errors);
        }
    }

    pub fn finish(&self, json: Option<&PathBuf>) -> anyhow::Result<()> {
        self.print();
        if let Some(path) = json {
            std::fs::write(path, serde_json::to_string_pretty(self)?)?;
            println!("report written to {}", path.display());
        }
        Ok(())
    }
}

/// CPU seconds (user + system) a process has used, from /proc.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds of several processes together (the nodes of a cluster);
/// `None` if none is given or one cannot be read.
pub fn cpu_seconds_of(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| cpu_seconds(pid)).sum()
}

/// Resident memory of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
