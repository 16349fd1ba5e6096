//! `persist`: how many message rows per second the persistence actor commits
//! when many conversations write at once (each with one write in flight, as
//! real conversations do), against a plain binary `COPY` of the same number
//! of rows into the same table, in the same run, on a private cluster with
//! full durability (fsync and synchronous commit on).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Instant;

use chathub::actors::PersistenceHandle;
use chathub::actors::handles::block_on;
use chathub::actors::persistence::{MessageRow, Persistence, SessionPatch, SessionWrite};
use chathub::domain::{Channel, MessageRole, SessionId};
use chathub::postgres::{self, LocalPostgres, LocalPostgresOptions};
use futures_util::pin_mut;
use serde_json::json;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use crate::report::{self, Percentiles, Report};

#[derive(clap::Args)]
pub struct Args {
    /// Conversations writing at once.
    #[arg(long, default_value_t = 2000)]
    sessions: usize,
    /// Messages each conversation writes, one write at a time.
    #[arg(long, default_value_t = 50)]
    messages: usize,
    /// Rows per group-commit transaction (PERSIST_BATCH).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Alternating rounds of actor and COPY (ABAB…); medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("chathub-persist-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let options = LocalPostgresOptions { remove_dir_on_exit: true, ..Default::default() };
    let cluster = LocalPostgres::start(&dir.join("pg"), &options)?;
    let url = cluster.connection_string("bench");
    let admin = cluster.connection_string("postgres");
    let outcome = block_on(async move {
        postgres::ensure_database(&admin, "bench").await?;
        postgres::migrate(&url).await?;
        measure(&url, &args).await.map(|report| (report, args.json))
    });
    cluster.stop();
    let (report, json) = outcome?;
    report.finish(json.as_ref())
}

async fn measure(url: &str, args: &Args) -> anyhow::Result<Report> {
    let db = postgres::pool(url, 8)?;
    let persistence = PersistenceHandle::spawn(Persistence::new(db.clone(), chrono_tz::UTC, usize::MAX / 2, args.batch, None));
    let rows = (args.sessions * args.messages) as f64;
    let mut latency = report::histogram();
    let (mut actor_rates, mut copy_rates) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds.max(1) {
        let (actor_secs, round_latency) = actor_round(&db, &persistence, args).await?;
        latency.add(&round_latency)?;
        actor_rates.push(rows / actor_secs);
        copy_rates.push(rows / copy_round(&db, args).await?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let mut report = Report {
        scenario: "persist".into(),
        params: json!({"sessions": args.sessions, "messages_per_session": args.messages, "batch": args.batch,
                       "rounds": args.rounds, "actor_rows_per_s": actor_rates, "copy_rows_per_s": copy_rates}),
        ..Default::default()
    };
    let (actor, copy) = (median(&mut actor_rates), median(&mut copy_rates));
    report.duration_secs = rows / actor;
    report.achieved_rate = actor;
    report.latencies.insert("enqueue→commit".into(), Percentiles::of(&latency));
    report.figures.insert("persistence actor rows/s (median)".into(), actor);
    report.figures.insert("plain binary COPY rows/s (median)".into(), copy);
    report.figures.insert("ratio actor / COPY".into(), actor / copy);
    Ok(report)
}

/// Makes `n` empty sessions to write into.
async fn sessions(db: &postgres::Db, n: usize) -> anyhow::Result<Vec<uuid::Uuid>> {
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::new_v4()).collect();
    db.get().await?.execute("INSERT INTO sessions (id, channel) SELECT unnest($1::uuid[]), 'web'", &[&ids]).await?;
    Ok(ids)
}

/// Every session writes its messages one write at a time; returns seconds.
async fn actor_round(
    db: &postgres::Db,
    persistence: &PersistenceHandle,
    args: &Args,
) -> anyhow::Result<(f64, hdrhistogram::Histogram<u64>)> {
    let ours = sessions(db, args.sessions).await?;
    let started = Instant::now();
    let writers: Vec<_> = ours
        .iter()
        .map(|&id| {
            let persistence = persistence.clone();
            let messages = args.messages;
            tokio::spawn(async move {
                let mut latency = report::histogram();
                for seq in 1..=messages as i64 {
                    let write = SessionWrite {
                        session_id: SessionId(id),
                        channel: Channel::Web,
                        create: None,
                        messages: vec![row(seq)],
                        patch: SessionPatch::default(),
                        outbox: Vec::new(),
                        fence: None,
                    };
                    let sent = Instant::now();
                    persistence.persist(write).await?;
                    let _ = latency.record(sent.elapsed().as_micros().max(1) as u64);
                }
                anyhow::Ok(latency)
            })
        })
        .collect();
    let mut latency = report::histogram();
    for writer in writers {
        latency.add(&writer.await??)?;
    }
    Ok((started.elapsed().as_secs_f64(), latency))
}

/// The baseline: one binary COPY of as many rows; returns seconds.
async fn copy_round(db: &postgres::Db, args: &Args) -> anyhow::Result<f64> {
    let theirs = sessions(db, args.sessions).await?;
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let started = Instant::now();
    let sink = tx
        .copy_in(
            "COPY messages (session_id, seq, role, text, client_msg_id, channel, external_id, author_id, latency_ms, created_at) FROM STDIN BINARY",
        )
        .await?;
    let types = [Type::UUID, Type::INT8, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::UUID, Type::INT4, Type::TIMESTAMPTZ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    let now = chrono::Utc::now();
    for id in &theirs {
        for seq in 1..=args.messages as i64 {
            let r = row(seq);
            let client_msg_id = r.client_msg_id.clone();
            writer
                .as_mut()
                .write(&[id, &seq, &r.role.as_str(), &r.text, &client_msg_id, &"web", &None::<String>, &None::<uuid::Uuid>, &None::<i32>, &now])
                .await?;
        }
    }
    writer.finish().await?;
    tx.commit().await?;
    Ok(started.elapsed().as_secs_f64())
}

fn row(seq: i64) -> MessageRow {
    MessageRow {
        seq,
        role: MessageRole::Visitor,
        text: "a persistence benchmark message of about sixty bytes of text..".into(),
        attachment_ids: Vec::new(),
        client_msg_id: Some(format!("c{seq}")),
        external_id: None,
        author_id: None,
        latency_ms: None,
        created_at: chrono::Utc::now(),
    }
}
