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
    #[arg(long, default_value = "127.0.0.1:8080")]
    server: String,
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
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long)]
    json: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let server = client::loopback(&args.server)?;
    let http = reqwest::Client::new();
    let login = http
        .post(format!("http://{server}/api/auth/login"))
        .json(&json!({"username": "admin", "password": args.admin_password}))
        .send()
        .await?;
    anyhow::ensure!(login.status().is_success(), "admin login failed: {}", login.status());
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("no session cookie"))?
        .to_owned();

    // Visitors first: their session ids are what the dashboards watch.
    let bar = indicatif::ProgressBar::new(args.visitors as u64).with_message("visitors");
    let mut visitors = Vec::with_capacity(args.visitors);
    let mut sessions = Vec::with_capacity(args.visitors);
    for _ in 0..args.visitors {
        let mut ws = client::connect(server, "/ws/chat", None).await?;
        ws.send(Message::text(json!({"type": "hello", "token": null, "last_seq": 0}).to_string())).await?;
        let welcome = loop {
            if let Some(Message::Text(text)) = ws.next().await.transpose()? {
                break serde_json::from_str::<Value>(&text)?;
            }
        };
        sessions.push(welcome["session_id"].as_str().unwrap_or_default().to_owned());
        visitors.push(ws);
        bar.inc(1);
    }
    bar.finish_and_clear();

    let start = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut dashboards = Vec::with_capacity(args.dashboards);
    for d in 0..args.dashboards {
        let mut request = format!("ws://{server}/ws/dashboard").into_client_request()?;
        request.headers_mut().insert("cookie", cookie.parse()?);
        request.headers_mut().insert("origin", format!("http://{server}").parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
        for session in &sessions {
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
        let stalled = d < args.stalled;
        let mut stopped = stopped.clone();
        dashboards.push(tokio::spawn(async move {
            let mut latency = report::histogram();
            let mut summary_age = report::histogram();
            let mut deliveries = 0u64;
            let mut closed = None;
            if stalled {
                // Never read; just hold the socket until the run ends.
                let _ = stopped.wait_for(|&s| s).await;
                return (latency, summary_age, deliveries, closed);
            }
            loop {
                let frame = tokio::select! {
                    frame = ws.next() => frame,
                    _ = stopped.wait_for(|&s| s) => break,
                };
                let Some(frame) = frame else { break };
                match frame {
                    Ok(Message::Text(text)) => {
                        deliveries += 1;
                        // A visitor's "fanout <micros since start>" in a message frame.
                        // (Session summaries quote the same text in their preview,
                        // but they are coalesced on purpose: not counted.)
                        if text.starts_with("{\"type\":\"message\"") {
                            if let Some(sent) = text.split("fanout ").nth(1).and_then(|r| r.split('"').next()).and_then(|m| m.parse::<u64>().ok()) {
                                let now = start.elapsed().as_micros() as u64;
                                let _ = latency.record(now.saturating_sub(sent).max(1));
                            }
                        } else if text.starts_with("{\"type\":\"session\"") {
                            // How late the live table is: arrival minus the time of the
                            // change it shows (a message, or another update).
                            let updated = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
                                let time = |k: &str| v["session"][k].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                                time("updated_at").max(time("last_message_at"))
                            });
                            if let Some(updated) = updated {
                                let age = (chrono::Utc::now() - updated.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0);
                                let _ = summary_age.record(age.max(1) as u64);
                            }
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        closed = frame.map(|f| u16::from(f.code));
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            (latency, summary_age, deliveries, closed)
        }));
    }

    let cpu_before = args.server_pid.and_then(report::cpu_seconds);
    let total = args.rate * args.duration;
    let gap = Duration::from_secs_f64(1.0 / args.rate as f64);
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
    let sending = send_start.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_after = args.server_pid.and_then(report::cpu_seconds);
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
        match result {
            Ok((h, ages, n, closed)) => {
                latency.add(&h)?;
                summary_age.add(&ages)?;
                deliveries += n;
                if closed == Some(4008) {
                    *report_errors.entry("reading dashboard closed as slow (4008)".to_owned()).or_insert(0) += 1;
                }
            }
            _ => {}
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
