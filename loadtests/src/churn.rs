//! `churn`: on top of an idle base of visitor sessions, new visitors
//! connect, say hello, send one message, wait for its ack and leave, at a
//! constant rate. Afterwards, once idle conversations are evicted (start the
//! server with a short `SESSION_IDLE_EVICT_SECS`), the server's sockets,
//! live conversations and memory should be back at the base.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client;
use crate::report::{self, Percentiles, Report};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    server: String,
    /// Idle sessions held open throughout.
    #[arg(long, default_value_t = 1000)]
    base: usize,
    /// New visitors per second (each connects, chats once, disconnects).
    #[arg(long, default_value_t = 500)]
    rate: u64,
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seconds to wait after the churn before reading the server again
    /// (longer than the server's SESSION_IDLE_EVICT_SECS).
    #[arg(long, default_value_t = 15)]
    settle: u64,
    #[arg(long)]
    sources: Option<String>,
    #[arg(long)]
    server_pid: u32,
    #[arg(long)]
    json: Option<PathBuf>,
}

async fn gauge(server: std::net::SocketAddr, name: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://{server}/metrics")).await else { return f64::NAN };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// One visitor's whole visit; returns (welcome latency, ack latency) in µs.
async fn visit(server: std::net::SocketAddr, source: Option<std::net::IpAddr>, intended: Instant, n: u64) -> anyhow::Result<(u64, u64)> {
    let mut ws = client::visitor(server, source).await?;
    let welcomed = (Instant::now() - intended).as_micros() as u64;
    ws.send(Message::text(json!({"type": "message", "client_msg_id": format!("c{n}"), "text": "just passing by"}).to_string())).await?;
    while let Some(frame) = ws.next().await {
        if let Message::Text(text) = frame? {
            let value: Value = serde_json::from_str(&text)?;
            if value["type"] == "ack" {
                let acked = (Instant::now() - intended).as_micros() as u64;
                let _ = ws.close(None).await;
                return Ok((welcomed, acked));
            }
        }
    }
    anyhow::bail!("closed before the ack")
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let server = client::loopback(&args.server)?;
    let sources = client::sources(&args.sources);
    let rss_start = report::rss_kib(args.server_pid).ok_or_else(|| anyhow::anyhow!("no such server PID"))?;
    let mut base = Vec::with_capacity(args.base);
    for i in 0..args.base {
        let socket = client::visitor(server, sources[i % sources.len()]).await?;
        base.push(tokio::spawn(async move {
            let (_w, mut r) = socket.split();
            while let Some(Ok(_)) = r.next().await {}
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_base = report::rss_kib(args.server_pid).unwrap_or(rss_start);
    let (sockets_base, live_base) = (gauge(server, "chathub_visitor_sockets").await, gauge(server, "chathub_live_sessions").await);

    let total = args.rate * args.duration;
    let gap = Duration::from_secs_f64(1.0 / args.rate as f64);
    let start = Instant::now();
    let progress = indicatif::ProgressBar::new(total);
    let mut visits = Vec::with_capacity(total as usize);
    for n in 0..total {
        let intended = start + gap * n as u32;
        tokio::time::sleep_until(intended).await;
        let source = sources[n as usize % sources.len()];
        visits.push(tokio::spawn(visit(server, source, intended, n)));
        if n % 100 == 0 {
            progress.set_position(n);
        }
    }
    progress.finish_and_clear();
    let (mut welcome, mut ack) = (report::histogram(), report::histogram());
    let mut failures = 0u64;
    for v in visits {
        match v.await? {
            Ok((w, a)) => {
                let _ = welcome.record(w.max(1));
                let _ = ack.record(a.max(1));
            }
            Err(_) => failures += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rss_peak = report::rss_kib(args.server_pid).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let rss_after = report::rss_kib(args.server_pid).unwrap_or(0);
    let (sockets_after, live_after) = (gauge(server, "chathub_visitor_sockets").await, gauge(server, "chathub_live_sessions").await);

    let mut report = Report {
        scenario: "churn".into(),
        params: json!({"base": args.base, "rate": args.rate, "duration": args.duration, "settle": args.settle}),
        duration_secs: elapsed,
        achieved_rate: (total - failures) as f64 / elapsed,
        ..Default::default()
    };
    if failures > 0 {
        report.errors.insert("visits failed".into(), failures);
    }
    report.latencies.insert("connect+hello→welcome".into(), Percentiles::of(&welcome));
    report.latencies.insert("connect→message acked".into(), Percentiles::of(&ack));
    for (name, value) in [
        ("visitor sockets: base", sockets_base),
        ("visitor sockets: after", sockets_after),
        ("live conversations: base", live_base),
        ("live conversations: after settle", live_after),
        ("server RSS at start (MiB)", rss_start as f64 / 1024.0),
        ("server RSS with base (MiB)", rss_base as f64 / 1024.0),
        ("server RSS at end of churn (MiB)", rss_peak as f64 / 1024.0),
        ("server RSS after settle (MiB)", rss_after as f64 / 1024.0),
    ] {
        report.figures.insert(name.into(), value);
    }
    for task in base {
        task.abort();
    }
    report.finish(args.json.as_ref())
}
