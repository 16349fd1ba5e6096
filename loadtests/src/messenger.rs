//! `messenger`: signed Messenger webhook POSTs at a constant rate (open
//! loop). The hub answers 200 only after the message is committed, so the
//! latency here is "accepted and persisted". Start the server with the same
//! `MESSENGER_APP_SECRET`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::report::{self, Percentiles, Report};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    server: String,
    /// The app secret the server was started with.
    #[arg(long, env = "MESSENGER_APP_SECRET")]
    app_secret: String,
    /// Webhook messages per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Distinct senders (conversations) the messages are spread over.
    #[arg(long, default_value_t = 1000)]
    senders: u64,
    /// Requests allowed in flight before new ones wait (their wait counts as latency).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long)]
    json: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let server = crate::client::loopback(&args.server)?;
    let url = format!("http://{server}/webhooks/messenger");
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let limit = Arc::new(Semaphore::new(args.concurrency));
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let total = args.rate * args.duration;
    let gap = Duration::from_secs_f64(1.0 / args.rate as f64);
    let cpu_before = args.server_pid.and_then(report::cpu_seconds);
    let progress = indicatif::ProgressBar::new(total);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let intended = start + gap * n as u32;
        tokio::time::sleep_until(intended).await;
        let body = serde_json::to_vec(&json!({"object": "page", "entry": [{"id": "PAGE", "time": n, "messaging": [{
            "sender": {"id": format!("load-{run_id}-{}", n % args.senders)}, "recipient": {"id": "PAGE"}, "timestamp": n,
            "message": {"mid": format!("m-{run_id}-{n}"), "text": format!("load message {n}")}}]}]}))?;
        let signature = chathub::channels::sign(&args.app_secret, &body);
        let (http, url, limit) = (http.clone(), url.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await;
            let response = http.post(&url).header("content-type", "application/json").header("x-hub-signature-256", signature).body(body).send().await;
            let status = match response {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            (status, (Instant::now() - intended).as_micros().max(1) as u64)
        }));
        if n % 500 == 0 {
            progress.set_position(n);
        }
    }
    progress.finish_and_clear();
    let mut latency = report::histogram();
    let mut errors = std::collections::BTreeMap::new();
    let mut accepted = 0u64;
    for task in tasks {
        let (status, micros) = task.await?;
        if status == 200 {
            accepted += 1;
            let _ = latency.record(micros);
        } else {
            *errors.entry(format!("HTTP {status}")).or_insert(0) += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut report = Report {
        scenario: "messenger".into(),
        params: json!({"rate": args.rate, "duration": args.duration, "senders": args.senders, "concurrency": args.concurrency}),
        duration_secs: elapsed,
        achieved_rate: accepted as f64 / elapsed,
        errors,
        ..Default::default()
    };
    report.latencies.insert("POST→200 (persisted)".into(), Percentiles::of(&latency));
    if let (Some(before), Some(after)) = (cpu_before, args.server_pid.and_then(report::cpu_seconds)) {
        report.figures.insert("server CPU s per 1M webhook messages".into(), (after - before) / accepted.max(1) as f64 * 1e6);
    }
    report.finish(args.json.as_ref())
}
