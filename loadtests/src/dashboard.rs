//! `dashboard`: what staff do all day, timed at the database's scale (fill
//! it with `seed` first): the session list (first page, a deep page by
//! `page`, the same depth by `cursor`), searches (a word, a name, an email,
//! a phone number, a word found nowhere), stats (all time, the last 90
//! days) and exports (a week as CSV, today with transcripts as JSON). Each request is repeated `--repeat` times, one at a time, while
//! visitors chat in the background; the chat's send→ack is measured alone
//! first and then under the dashboard load, so a slower chat shows.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::client;
use crate::report::{self, Percentiles, Report};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    server: String,
    /// The admin password (requests sign in as `admin`).
    #[arg(long, env = "ADMIN_PASSWORD")]
    admin_password: String,
    /// Times each request is made.
    #[arg(long, default_value_t = 20)]
    repeat: usize,
    /// Visitors chatting in the background (one message in flight each).
    #[arg(long, default_value_t = 20)]
    chat_visitors: usize,
    /// Seconds the chat is measured alone before the dashboard requests start.
    #[arg(long, default_value_t = 5)]
    chat_alone_secs: u64,
    #[arg(long)]
    json: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let server = client::loopback(&args.server)?;
    let base = format!("http://{server}");
    let cookie = client::admin_cookie(server, &args.admin_password).await?;
    let http = reqwest::Client::new();
    // A request's whole body (a JSON page, or an export to its last byte).
    let fetch = |path: String| {
        let request = http.get(format!("{base}{path}")).header("cookie", &cookie);
        async move {
            let response = request.send().await?;
            anyhow::ensure!(response.status().is_success(), "{path}: {}", response.status());
            Ok::<bytes::Bytes, anyhow::Error>(response.bytes().await?)
        }
    };
    let get = |path: String| {
        let body = fetch(path);
        async move { Ok::<Value, anyhow::Error>(serde_json::from_slice(&body.await?)?) }
    };

    // The cursor of the page 500 pages in, to time a deep page by cursor.
    let deep = get("/api/sessions?page=500".into()).await?;
    let cursor = deep["next_cursor"].as_str().map(str::to_owned);
    let to = chrono::Utc::now().date_naive();
    let from = to - chrono::Duration::days(89);
    let mut requests: Vec<(&str, String)> = vec![
        ("list: first page", "/api/sessions".into()),
        ("list: page 500 (page=)", "/api/sessions?page=500".into()),
    ];
    if let Some(cursor) = &cursor {
        requests.push(("list: page 501 (cursor=)", format!("/api/sessions?cursor={cursor}")));
    }
    requests.extend([
        ("search: a word", "/api/sessions?q=whitening".to_owned()),
        ("search: two words, quoted", "/api/sessions?q=%22whitening%20invoice%22".to_owned()),
        ("search: a name", "/api/sessions?q=Customer%204242".to_owned()),
        ("search: an email", "/api/sessions?q=customer4242%40example.com".to_owned()),
        ("search: a phone number", "/api/sessions?q=%2B15550004242".to_owned()),
        ("search: a word found nowhere", "/api/sessions?q=nosuchwordanywhere".to_owned()),
        ("stats: all time", "/api/sessions/stats".to_owned()),
        ("stats: last 90 days", format!("/api/sessions/stats?from={from}&to={to}")),
        // Exports stream; each is timed to its last byte.
        ("export: CSV, last 7 days", format!("/api/sessions/export?format=csv&from={}", to - chrono::Duration::days(6))),
        ("export: JSON with transcripts, today", format!("/api/sessions/export?format=json&include=messages&from={to}")),
    ]);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (measure, measuring) = tokio::sync::watch::channel(false);
    let chat = tokio::spawn(background_chat(server, args.chat_visitors, stopped, measuring));
    tokio::time::sleep(Duration::from_secs(args.chat_alone_secs)).await;
    let _ = measure.send(true);

    let bar = indicatif::ProgressBar::new((requests.len() * args.repeat) as u64);
    let mut report = Report {
        scenario: "dashboard".into(),
        params: json!({"repeat": args.repeat, "chat_visitors": args.chat_visitors,
                       "sessions": deep["total"], "cursor_paging": cursor.is_some()}),
        ..Default::default()
    };
    let started = Instant::now();
    for (name, path) in &requests {
        let mut times = report::histogram();
        for _ in 0..args.repeat {
            let sent = Instant::now();
            fetch(path.clone()).await?;
            let _ = times.record(sent.elapsed().as_micros().max(1) as u64);
            bar.inc(1);
        }
        report.latencies.insert((*name).to_owned(), Percentiles::of(&times));
    }
    bar.finish_and_clear();
    report.duration_secs = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let (alone, loaded) = chat.await??;
    report.latencies.insert("chat send→ack, chat alone".into(), Percentiles::of(&alone));
    report.latencies.insert("chat send→ack, with the dashboard requests".into(), Percentiles::of(&loaded));
    report.finish(args.json.as_ref())
}

type Histogram = hdrhistogram::Histogram<u64>;

/// Visitors each sending a message as soon as the previous one is acked;
/// acks are counted as "alone" until `measuring` turns true, then as "loaded".
async fn background_chat(
    server: std::net::SocketAddr,
    visitors: usize,
    stopped: tokio::sync::watch::Receiver<bool>,
    measuring: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(Histogram, Histogram)> {
    let mut tasks = Vec::new();
    for v in 0..visitors {
        let mut socket = client::visitor(server, None).await?;
        let (stopped, measuring) = (stopped.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let (mut alone, mut loaded) = (report::histogram(), report::histogram());
            let mut n = 0;
            while !*stopped.borrow() {
                let sent = Instant::now();
                socket = client::say_once(socket, &format!("bg{v}-{n}")).await?;
                let micros = sent.elapsed().as_micros().max(1) as u64;
                let _ = if *measuring.borrow() { loaded.record(micros) } else { alone.record(micros) };
                n += 1;
                // About 10 messages a second per visitor.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok((alone, loaded))
        }));
    }
    let (mut alone, mut loaded) = (report::histogram(), report::histogram());
    for task in tasks {
        let (a, l) = task.await??;
        alone.add(&a)?;
        loaded.add(&l)?;
    }
    Ok((alone, loaded))
}
