//! `seed`: fills a database with `--sessions` conversations and `--messages`
//! messages spread over `--days`, through the hub's own store layer
//! (`conversation_writes::write_batch`: a multi-row INSERT of the sessions,
//! a binary COPY of the messages, the sessions' counters and completions),
//! so the rows are what the hub itself writes. For measuring the dashboard
//! at scale (`dashboard`); loopback databases only.
//!
//! The data is deterministic for a given `--seed`: customers `Customer N`
//! (`customerN@example.com`, `+1555NNNNNNN`), channels web/messenger/whatsapp,
//! messages of 3 to 10 words from a fixed vocabulary (visitor and AI turns),
//! 40 % of conversations completed, 5 % archived, a few escalated.

use std::path::PathBuf;
use std::time::Instant;

use chathub::actors::persistence::{MessageRow, NewSessionRow, SessionPatch, SessionWrite};
use chathub::domain::{Channel, Customer, MessageRole, SessionId, SessionStatus};
use chathub::postgres;
use chathub::store::conversation_writes::write_batch;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::report::Report;

#[derive(clap::Args)]
pub struct Args {
    /// The database to fill (loopback or a local socket only); migrated first.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value_t = 100_000)]
    sessions: u64,
    /// Messages in total (spread evenly, at least one per session).
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Days back the conversations start over.
    #[arg(long, default_value_t = 90)]
    days: i64,
    /// Conversations per transaction.
    #[arg(long, default_value_t = 1000)]
    batch: u64,
    /// Transactions running at once.
    #[arg(long, default_value_t = 2)]
    parallel: usize,
    /// Varies the data deterministically.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The hub's `TIMEZONE`: the days the AI's response times are counted in.
    #[arg(long, env = "TIMEZONE", default_value = "UTC")]
    timezone: String,
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Words messages are made of. Each is a whole word nowhere else inside
/// another one, so a word search and a substring search agree on them.
pub const VOCABULARY: &[&str] = &[
    "appointment", "booking", "whitening", "implant", "cleaning", "price", "monday", "tuesday", "friday",
    "morning", "evening", "insurance", "invoice", "refund", "parking", "address", "dentist", "hygienist",
    "consultation", "braces", "crown", "filling", "emergency", "toothache", "checkup", "xray", "voucher",
    "discount", "deposit", "reschedule", "cancel", "confirm", "reminder", "location", "clinic", "weekend",
    "children", "family", "payment", "card", "cash", "available", "tomorrow", "question", "thanks", "please",
];

/// A small deterministic generator (SplitMix64): the same seed, the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn sentence(rng: &mut Rng) -> String {
    let words = 3 + rng.below(8);
    (0..words).map(|_| VOCABULARY[rng.below(VOCABULARY.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
}

/// Conversation `n` and its `count` messages, starting at `start`.
fn conversation(n: u64, count: u64, start: DateTime<Utc>, rng: &mut Rng) -> SessionWrite {
    let channel = [Channel::Web, Channel::Web, Channel::Messenger, Channel::Whatsapp][rng.below(4) as usize];
    let customer = Customer {
        name: Some(format!("Customer {n}")),
        email: Some(format!("customer{n}@example.com")),
        phone: Some(format!("+1555{n:07}")),
    };
    let external_id = (channel != Channel::Web).then(|| format!("seed-{n}"));
    let mut at = start;
    let messages: Vec<MessageRow> = (1..=count as i64)
        .map(|seq| {
            at += Duration::seconds(5 + rng.below(120) as i64);
            let role = if seq % 2 == 1 { MessageRole::Visitor } else { MessageRole::Ai };
            MessageRow {
                seq,
                role,
                text: sentence(rng),
                attachment_ids: Vec::new(),
                client_msg_id: (role == MessageRole::Visitor).then(|| format!("seed-{seq}")),
                external_id: None,
                author_id: None,
                latency_ms: (role == MessageRole::Ai).then(|| 200 + rng.below(3000) as i32),
                created_at: at,
            }
        })
        .collect();
    let mut patch = SessionPatch::default();
    match rng.below(100) {
        0..40 => patch.completion = Some(("booking_link".to_owned(), at)),
        40..45 => patch.status = Some(SessionStatus::Archived),
        45..47 => {
            patch.status = Some(SessionStatus::Escalated);
            patch.escalated_at = Some(at);
        }
        _ => {}
    }
    let row = NewSessionRow {
        channel,
        external_id,
        site_id: None,
        visitor_token_hash: None,
        customer,
        metadata: json!({}),
        created_at: start,
    };
    SessionWrite { session_id: SessionId::new(), channel, create: Some(row), messages, patch, outbox: Vec::new(), fence: None }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    check_local(&args.database_url)?;
    anyhow::ensure!(args.sessions > 0 && args.batch > 0, "sessions and batch must be positive");
    postgres::migrate(&args.database_url).await?;
    let db = postgres::pool(&args.database_url, args.parallel.max(1) + 1)?;
    let tz: chrono_tz::Tz = args.timezone.parse().map_err(|e| anyhow::anyhow!("TIMEZONE: {e}"))?;
    let per_session = (args.messages / args.sessions).max(1);
    let extra = args.messages.saturating_sub(per_session * args.sessions);
    let now = Utc::now();
    let span = args.days.max(1) * 86_400;
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new(args.sessions);
    let batches: Vec<(u64, u64)> = (0..args.sessions).step_by(args.batch as usize).map(|from| (from, (from + args.batch).min(args.sessions))).collect();
    let mut written = 0u64;
    for group in batches.chunks(args.parallel.max(1)) {
        let mut tasks = Vec::new();
        for &(from, to) in group {
            let db = db.clone();
            let seed = args.seed;
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng(seed.wrapping_mul(1_000_003).wrapping_add(from));
                let writes: Vec<SessionWrite> = (from..to)
                    .map(|n| {
                        // Oldest first, so ids and times grow together as in life.
                        let start = now - Duration::seconds(span - (n as i64 * span) / args.sessions as i64) - Duration::hours(1);
                        let count = per_session + u64::from(n < extra);
                        conversation(n, count, start, &mut rng)
                    })
                    .collect();
                let messages: u64 = writes.iter().map(|w| w.messages.len() as u64).sum();
                write_batch(&db, &writes, tz).await.map(|()| messages)
            }));
        }
        for task in tasks {
            written += task.await??;
        }
        bar.set_position(group.last().map_or(0, |g| g.1));
    }
    bar.finish_and_clear();
    let client = db.get().await?;
    client.batch_execute("ANALYZE sessions; ANALYZE messages; ANALYZE session_words;").await?;
    let secs = started.elapsed().as_secs_f64();
    let mut report = Report {
        scenario: "seed".into(),
        params: json!({"sessions": args.sessions, "messages": written, "days": args.days, "seed": args.seed}),
        duration_secs: secs,
        achieved_rate: written as f64 / secs,
        ..Default::default()
    };
    report.figures.insert("messages written/s".into(), written as f64 / secs);
    report.finish(args.json.as_ref())
}

/// The load generator writes only to databases on this machine.
fn check_local(url: &str) -> anyhow::Result<()> {
    let config = postgres::parse_config(url)?;
    for host in config.get_hosts() {
        if let tokio_postgres::config::Host::Tcp(name) = host {
            let local = name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            anyhow::ensure!(local, "seed only writes to a database on this machine (host {name})");
        }
    }
    Ok(())
}
