//! `chat`: N visitors send at a constant total rate (open loop) for a fixed
//! time. Measures send→ack (the message is committed) and send→agent reply,
//! both from the intended send time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client;
use crate::report::{self, Percentiles, Report};

#[derive(clap::Args)]
pub struct Args {
    /// Server address (loopback only); several, comma-separated, spread the
    /// visitors over the nodes of a cluster.
    #[arg(long, default_value = "127.0.0.1:8080")]
    server: String,
    /// Concurrent visitors.
    #[arg(long, default_value_t = 1000)]
    visitors: usize,
    /// Total messages per second across all visitors.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of sending (the run stops by itself).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Visitors connected per second during the ramp.
    #[arg(long, default_value_t = 2000)]
    connect_rate: u64,
    /// Several nodes: each visitor starts its conversation on one node of
    /// `--server` and then chats from the next one, so every message is
    /// forwarded to the node that runs the conversation (the remote hop).
    #[arg(long)]
    hop: bool,
    /// Comma-separated loopback source addresses to spread sockets over.
    #[arg(long)]
    sources: Option<String>,
    /// The server's PID (several, comma-separated: summed), to report its
    /// CPU seconds per million messages.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Seconds to wait for the last acks and replies after sending stops.
const DRAIN: Duration = Duration::from_secs(5);

struct VisitorResult {
    ack: Histogram<u64>,
    reply: Histogram<u64>,
    sent: u64,
    errors: BTreeMap<String, u64>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let servers = client::loopbacks(&args.server)?;
    let sources = client::sources(&args.sources);
    let total = args.rate * args.duration;
    anyhow::ensure!(args.visitors > 0 && args.rate > 0, "visitors and rate must be positive");

    // Ramp: connect at the given rate.
    let ramp = indicatif::ProgressBar::new(args.visitors as u64).with_message("connecting");
    let mut senders = Vec::with_capacity(args.visitors);
    let mut tasks = Vec::with_capacity(args.visitors);
    let connect_gap = Duration::from_secs_f64(1.0 / args.connect_rate.max(1) as f64);
    let mut next_connect = Instant::now();
    for i in 0..args.visitors {
        tokio::time::sleep_until(next_connect).await;
        next_connect += connect_gap;
        let (home, source) = (servers[i % servers.len()], sources[i % sources.len()]);
        let socket = if args.hop {
            client::visitor_elsewhere(home, servers[(i + 1) % servers.len()], source).await?
        } else {
            client::visitor(home, source).await?
        };
        let (tx, rx) = mpsc::unbounded_channel::<(String, Instant)>();
        senders.push(tx);
        tasks.push(tokio::spawn(visitor_loop(socket, rx)));
        ramp.inc(1);
    }
    ramp.finish_and_clear();

    let cpu_before = report::cpu_seconds_of(&args.server_pid);
    let progress = indicatif::ProgressBar::new(total);
    let start = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / args.rate as f64);
    for n in 0..total {
        let intended = start + gap * n as u32;
        tokio::time::sleep_until(intended).await;
        let _ = senders[(n as usize) % senders.len()].send((format!("m{n}"), intended));
        if n % 1000 == 0 {
            progress.set_position(n);
        }
    }
    let sending = start.elapsed();
    progress.finish_and_clear();
    drop(senders);

    let mut ack = report::histogram();
    let mut reply = report::histogram();
    let mut errors = BTreeMap::new();
    let mut sent = 0;
    for task in tasks {
        let result = task.await?;
        ack.add(&result.ack)?;
        reply.add(&result.reply)?;
        sent += result.sent;
        for (k, v) in result.errors {
            *errors.entry(k).or_insert(0) += v;
        }
    }
    let mut report = Report {
        scenario: "chat".into(),
        params: json!({"visitors": args.visitors, "rate": args.rate, "duration": args.duration,
                       "servers": servers.len(), "hop": args.hop}),
        duration_secs: sending.as_secs_f64(),
        achieved_rate: sent as f64 / sending.as_secs_f64(),
        errors,
        ..Default::default()
    };
    report.latencies.insert("send→ack".into(), Percentiles::of(&ack));
    report.latencies.insert("send→agent reply".into(), Percentiles::of(&reply));
    if let (Some(before), Some(after)) = (cpu_before, report::cpu_seconds_of(&args.server_pid)) {
        report.figures.insert("server CPU s per 1M messages".into(), (after - before) / sent.max(1) as f64 * 1e6);
    }
    report.finish(args.json.as_ref())
}

async fn visitor_loop(socket: client::Socket, mut commands: mpsc::UnboundedReceiver<(String, Instant)>) -> VisitorResult {
    let (mut write, mut read) = socket.split();
    let mut result = VisitorResult { ack: report::histogram(), reply: report::histogram(), sent: 0, errors: BTreeMap::new() };
    let mut awaiting_ack: HashMap<String, Instant> = HashMap::new();
    // Intended times of messages the agent has not answered yet, oldest first.
    let mut awaiting_reply: VecDeque<Instant> = VecDeque::new();
    let mut open = true;
    let mut deadline: Option<Instant> = None;
    loop {
        if !open && awaiting_ack.is_empty() && awaiting_reply.is_empty() {
            break;
        }
        let drain_deadline = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            command = commands.recv(), if open => match command {
                Some((id, intended)) => {
                    let frame = json!({"type": "message", "client_msg_id": id, "text": "load test message"});
                    if write.send(Message::text(frame.to_string())).await.is_err() {
                        *result.errors.entry("socket_closed".into()).or_insert(0) += 1;
                        break;
                    }
                    result.sent += 1;
                    awaiting_ack.insert(id, intended);
                    awaiting_reply.push_back(intended);
                }
                None => {
                    open = false;
                    deadline = Some(Instant::now() + DRAIN);
                }
            },
            frame = read.next() => {
                let Some(Ok(Message::Text(text))) = frame else {
                    if !matches!(frame, Some(Ok(_))) {
                        *result.errors.entry("socket_closed".into()).or_insert(0) += 1;
                        break;
                    }
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
                let now = Instant::now();
                match value["type"].as_str() {
                    Some("ack") => {
                        if let Some(intended) = value["client_msg_id"].as_str().and_then(|id| awaiting_ack.remove(id)) {
                            let _ = result.ack.record((now - intended).as_micros().max(1) as u64);
                        }
                    }
                    Some("message") if value["message"]["role"] != "visitor" => {
                        // One reply may answer several queued messages: each waited until now.
                        for intended in awaiting_reply.drain(..) {
                            let _ = result.reply.record((now - intended).as_micros().max(1) as u64);
                        }
                    }
                    Some("error") => {
                        let code = value["code"].as_str().unwrap_or("unknown").to_owned();
                        *result.errors.entry(code).or_insert(0) += 1;
                        if let Some(id) = value["client_msg_id"].as_str() {
                            awaiting_ack.remove(id);
                        }
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(drain_deadline), if deadline.is_some() => {
                if !awaiting_ack.is_empty() {
                    *result.errors.entry("no_ack_in_time".into()).or_insert(0) += awaiting_ack.len() as u64;
                }
                if !awaiting_reply.is_empty() {
                    *result.errors.entry("no_reply_in_time".into()).or_insert(0) += awaiting_reply.len() as u64;
                }
                break;
            }
        }
    }
    result
}
