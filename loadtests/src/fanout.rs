//! `fanout`: N visitors chat at a constant total rate while D staff
//! dashboards each watch every conversation. Every stored message is
//! delivered to every dashboard; measures deliveries per second and
//! visitor-send → dashboard-receive latency. The send time travels inside
//! the message text, so no state is shared between the sockets.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::client;
use crate::report::{self, Percentiles, Report};

#[derive(clap::Args)]
pub struct Args {
    /// Where visitors connect; several (comma-separated) spread them over
    /// the nodes of a cluster.
    #[arg(long, default_value = "127.0.0.1:8080")]
    server: String,
    /// Where dashboards connect (default: `--server`); e.g. visitors on node
    /// A and dashboards on node B.
    #[arg(long)]
    dashboard_server: Option<String>,
    /// The admin password (dashboards sign in as `admin`).
    #[arg(long, env = "ADMIN_PASSWORD")]
    admin_password: String,
    #[arg(long, default_value_t = 1000)]
    visitors: usize,
    #[arg(long, default_value_t = 100)]
    dashboards: usize,
    /// Visitor messages per second in total.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Leave this many dashboards not reading at all (the slow-consumer case).
    #[arg(long, default_value_t = 0)]
    stalled: usize,
    /// Server PIDs (comma-separated: summed) for CPU per delivery.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    #[arg(long)]
    json: Option<PathBuf>,
}

use crate::client::Socket;
/// A dashboard socket (connected with cookies, through tungstenite's own connector).
type Dashboard = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What one reading dashboard saw.
struct Tally {
    latency: hdrhistogram::Histogram<u64>,
    summary_age: hdrhistogram::Histogram<u64>,
    deliveries: u64,
    /// The close code, if the server closed the socket.
    closed: Option<u16>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let servers = client::loopbacks(&args.server)?;
    let dashboard_servers = client::loopbacks(args.dashboard_server.as_deref().unwrap_or(&args.server))?;
    // One login serves every node: staff sessions live in PostgreSQL.
    let cookie = client::admin_cookie(dashboard_servers[0], &args.admin_password).await?;
    // Visitors first: their session ids are what the dashboards watch.
    let (visitors, sessions) = open_visitors(&servers, args.visitors).await?;

    let start = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut dashboards = Vec::with_capacity(args.dashboards);
    for d in 0..args.dashboards {
        let ws = open_dashboard(dashboard_servers[d % dashboard_servers.len()], &cookie, &sessions).await?;
        let stalled = d < args.stalled;
        dashboards.push(tokio::spawn(read_dashboard(ws, stalled, stopped.clone(), start)));
    }

    let cpu_before = report::cpu_seconds_of(&args.server_pid);
    let total = args.rate * args.duration;
    let send_start = Instant::now();
    let (writers, readers) = send_messages(visitors, total, args.rate, start).await;
    let sending = send_start.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_after = report::cpu_seconds_of(&args.server_pid);
    let _ = stop.send(true);
    for mut write in writers {
        let _ = write.close().await;
    }
    for reader in readers {
        reader.abort();
    }

    let mut latency = report::histogram();
    let mut summary_age = report::histogram();
    let mut deliveries = 0;
    let mut report_errors = std::collections::BTreeMap::new();
    for (i, dashboard) in dashboards.into_iter().enumerate() {
        let result = dashboard.await;
        if i < args.stalled {
            continue;
        }
        if let Ok(tally) = result {
            latency.add(&tally.latency)?;
            summary_age.add(&tally.summary_age)?;
            deliveries += tally.deliveries;
            if tally.closed == Some(4008) {
                *report_errors.entry("reading dashboard closed as slow (4008)".to_owned()).or_insert(0) += 1;
            }
        }
    }
    let measured = latency.len();
    let mut report = Report {
        scenario: "fanout".into(),
        params: json!({"visitors": args.visitors, "dashboards": args.dashboards, "rate": args.rate,
                       "duration": args.duration, "stalled": args.stalled}),
        duration_secs: sending.as_secs_f64(),
        achieved_rate: measured as f64 / sending.as_secs_f64(),
        errors: report_errors,
        ..Default::default()
    };
    report.latencies.insert("visitor send→dashboard".into(), Percentiles::of(&latency));
    report.latencies.insert("summary staleness".into(), Percentiles::of(&summary_age));
    report.figures.insert("message deliveries to dashboards/s".into(), measured as f64 / sending.as_secs_f64());
    report.figures.insert("all dashboard frames received".into(), deliveries as f64);
    report.figures.insert("all dashboard frames/s".into(), deliveries as f64 / sending.as_secs_f64());
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        report.figures.insert("server CPU s per 1M deliveries".into(), (after - before) / measured.max(1) as f64 * 1e6);
    }
    let expected = total * (args.dashboards - args.stalled) as u64;
    if measured < expected {
        report.errors.insert("visitor messages not seen by a reading dashboard".into(), expected - measured);
    }
    report.finish(args.json.as_ref())
}

/// `count` visitor sockets past `hello` and a first message, and their
/// session ids.
async fn open_visitors(servers: &[std::net::SocketAddr], count: usize) -> anyhow::Result<(Vec<Socket>, Vec<String>)> {
    let bar = indicatif::ProgressBar::new(count as u64).with_message("visitors");
    let mut visitors = Vec::with_capacity(count);
    let mut sessions = Vec::with_capacity(count);
    for i in 0..count {
        let (ws, welcome) = client::hello(servers[i % servers.len()], None, None).await?;
        sessions.push(welcome["session_id"].as_str().unwrap_or_default().to_owned());
        // One message first, so the conversation is stored: a dashboard on
        // another node of a cluster can only watch a stored conversation.
        visitors.push(client::say_once(ws, "warm-up").await?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((visitors, sessions))
}

/// A dashboard socket watching every session, once all watches are in place.
async fn open_dashboard(server: std::net::SocketAddr, cookie: &str, sessions: &[String]) -> anyhow::Result<Dashboard> {
    let mut request = format!("ws://{server}/ws/dashboard").into_client_request()?;
    request.headers_mut().insert("cookie", cookie.parse()?);
    request.headers_mut().insert("origin", format!("http://{server}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    for session in sessions {
        ws.send(Message::text(json!({"type": "watch", "session_id": session, "last_seq": 0}).to_string())).await?;
    }
    // Frames are handled in order: the error for a session that does not
    // exist means every watch before it is in place.
    let sentinel = uuid::Uuid::new_v4().to_string();
    ws.send(Message::text(json!({"type": "watch", "session_id": sentinel, "last_seq": 0}).to_string())).await?;
    while let Some(frame) = ws.next().await {
        if let Message::Text(text) = frame? {
            if text.contains("unknown_session") && text.contains(&sentinel) {
                break;
            }
        }
    }
    Ok(ws)
}

/// Reads a dashboard until the run stops (a stalled one never reads).
async fn read_dashboard(mut ws: Dashboard, stalled: bool, mut stopped: tokio::sync::watch::Receiver<bool>, start: Instant) -> Tally {
    let mut tally = Tally { latency: report::histogram(), summary_age: report::histogram(), deliveries: 0, closed: None };
    if stalled {
        // Never read; just hold the socket until the run ends.
        let _ = stopped.wait_for(|&s| s).await;
        return tally;
    }
    loop {
        let frame = tokio::select! {
            frame = ws.next() => frame,
            _ = stopped.wait_for(|&s| s) => break,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                tally.deliveries += 1;
                record_frame(&mut tally, &text, start);
            }
            Some(Ok(Message::Close(frame))) => {
                tally.closed = frame.map(|f| u16::from(f.code));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    tally
}

fn record_frame(tally: &mut Tally, text: &str, start: Instant) {
    // A visitor's "fanout <micros since start>" in a message frame.
    // (Session summaries quote the same text in their preview, but they
    // are coalesced on purpose: not counted.)
    if text.starts_with("{\"type\":\"message\"") {
        if let Some(sent) = text.split("fanout ").nth(1).and_then(|r| r.split('"').next()).and_then(|m| m.parse::<u64>().ok()) {
            let now = start.elapsed().as_micros() as u64;
            let _ = tally.latency.record(now.saturating_sub(sent).max(1));
        }
    } else if text.starts_with("{\"type\":\"session\"") {
        // How late the live table is: arrival minus the time of the change
        // it shows (a message, or another update).
        let updated = serde_json::from_str::<Value>(text).ok().and_then(|v| {
            let time = |k: &str| v["session"][k].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            time("updated_at").max(time("last_message_at"))
        });
        if let Some(updated) = updated {
            let age = (chrono::Utc::now() - updated.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0);
            let _ = tally.summary_age.record(age.max(1) as u64);
        }
    }
}

type Writer = futures_util::stream::SplitSink<Socket, Message>;

/// Sends `total` messages at `rate` per second, round-robin over the
/// visitors, each carrying its intended send time; returns the writers
/// (to close) and the tasks draining the visitors' own frames.
async fn send_messages(visitors: Vec<Socket>, total: u64, rate: u64, start: Instant) -> (Vec<Writer>, Vec<tokio::task::JoinHandle<()>>) {
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let send_start = Instant::now();
    let progress = indicatif::ProgressBar::new(total);
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for ws in visitors {
        let (write, mut read) = ws.split();
        writers.push(write);
        // Drain the visitors' own frames (acks, replies) so they never stall.
        readers.push(tokio::spawn(async move { while let Some(Ok(_)) = read.next().await {} }));
    }
    for n in 0..total {
        let intended = send_start + gap * n as u32;
        tokio::time::sleep_until(intended).await;
        let micros = (intended - start).as_micros();
        let frame = json!({"type": "message", "client_msg_id": format!("f{n}"), "text": format!("fanout {micros}")});
        let which = (n as usize) % writers.len();
        let _ = writers[which].send(Message::text(frame.to_string())).await;
        if n % 500 == 0 {
            progress.set_position(n);
        }
    }
    progress.finish_and_clear();
    (writers, readers)
}
