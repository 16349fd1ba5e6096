//! `idle`: ramp to N idle visitor sessions (each has said hello and holds a
//! conversation; with `--say`, each has also sent one message, so its
//! conversation actor is live), hold them, and report the server's memory
//! per session from its RSS before and after.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio::time::Instant;

use crate::client;
use crate::report::{self, Report};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    server: String,
    /// Sessions to open.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Sessions opened per second.
    #[arg(long, default_value_t = 1000)]
    connect_rate: u64,
    /// Each visitor sends one message after hello and waits for its ack (the
    /// conversation then has a live actor and the agent's answer).
    #[arg(long)]
    say: bool,
    /// Seconds to hold them open before measuring.
    #[arg(long, default_value_t = 10)]
    hold: u64,
    #[arg(long)]
    sources: Option<String>,
    /// The server's PID (required: memory is read from /proc).
    #[arg(long)]
    server_pid: u32,
    #[arg(long)]
    json: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let server = client::loopback(&args.server)?;
    let sources = client::sources(&args.sources);
    let rss_before = report::rss_kib(args.server_pid).ok_or_else(|| anyhow::anyhow!("no such server PID"))?;
    let progress = indicatif::ProgressBar::new(args.sessions as u64);
    let gap = Duration::from_secs_f64(1.0 / args.connect_rate.max(1) as f64);
    let start = Instant::now();
    let mut handshake = report::histogram();
    let mut sockets = Vec::with_capacity(args.sessions);
    let mut failures = 0u64;
    for i in 0..args.sessions {
        let intended = start + gap * i as u32;
        tokio::time::sleep_until(intended).await;
        let opened = match client::visitor(server, sources[i % sources.len()]).await {
            Ok(socket) if args.say => client::say_once(socket, &format!("idle-{i}")).await,
            other => other,
        };
        match opened {
            Ok(socket) => {
                let _ = handshake.record((Instant::now() - intended).as_micros().max(1) as u64);
                // Keep answering pings in the background.
                sockets.push(tokio::spawn(async move {
                    let (_write, mut read) = socket.split();
                    while let Some(Ok(_)) = read.next().await {}
                }));
            }
            Err(_) => failures += 1,
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let ramp = start.elapsed();
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let rss_after = report::rss_kib(args.server_pid).unwrap_or(rss_before);
    let open = sockets.len();
    let mut report = Report {
        scenario: "idle".into(),
        params: json!({"sessions": args.sessions, "connect_rate": args.connect_rate, "hold": args.hold, "say": args.say}),
        duration_secs: ramp.as_secs_f64(),
        achieved_rate: open as f64 / ramp.as_secs_f64(),
        ..Default::default()
    };
    if failures > 0 {
        report.errors.insert("connect_failed".into(), failures);
    }
    let step = if args.say { "handshake+hello+message→ack" } else { "handshake+hello→welcome" };
    report.latencies.insert(step.into(), report::Percentiles::of(&handshake));
    report.figures.insert("sessions open".into(), open as f64);
    report.figures.insert("server RSS before (MiB)".into(), rss_before as f64 / 1024.0);
    report.figures.insert("server RSS after (MiB)".into(), rss_after as f64 / 1024.0);
    report.figures.insert("server KiB per session".into(), (rss_after.saturating_sub(rss_before)) as f64 / open.max(1) as f64);
    for socket in sockets {
        socket.abort();
    }
    report.finish(args.json.as_ref())
}
