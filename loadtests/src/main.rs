//! chathub's load generator. Each scenario is bounded in count and time,
//! sends only to loopback, stops by itself, and prints a table (and, with
//! `--json FILE`, a JSON report). Latencies are HdrHistogram percentiles
//! measured from each message's *intended* send time (open loop), so a
//! stalled server shows up as latency instead of hiding as a lower rate.
//!
//! Scenarios: `persist` (the persistence actor against a plain COPY, in
//! process), `chat` (visitors at a constant total rate: send→ack and
//! send→agent reply), `idle` (many idle visitors: server memory per session),
//! `fanout` (dashboards watching every conversation: deliveries/s and latency;
//! `--stalled 1` is the slow-consumer case), `messenger` (signed webhooks at a
//! rate), `churn` (connect-chat-leave on an idle base; leaks), `seed` (fill a
//! database through the store layer) and `dashboard` (list, search and stats
//! timed at that scale while visitors chat).

mod chat;
mod dashboard;
mod churn;
mod client;
mod fanout;
mod idle;
mod messenger;
mod persist;
mod report;
mod seed;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "loadtests", about = "Load generator for chathub (loopback only)")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Persistence throughput: the group-commit actor vs a plain binary COPY.
    Persist(persist::Args),
    /// Visitors chatting at a constant total rate (open loop).
    Chat(chat::Args),
    /// Idle visitor sessions: server memory per session.
    Idle(idle::Args),
    /// Visitors chatting while dashboards watch every conversation.
    Fanout(fanout::Args),
    /// Signed Messenger webhooks at a constant rate.
    Messenger(messenger::Args),
    /// Visitors connecting, chatting and leaving on top of an idle base.
    Churn(churn::Args),
    /// Fill a database with conversations through the hub's store layer.
    Seed(seed::Args),
    /// The dashboard's list, search and stats requests at the database's scale.
    Dashboard(dashboard::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::Persist(args) => persist::run(args),
        Scenario::Chat(args) => tokio::runtime::Runtime::new()?.block_on(chat::run(args)),
        Scenario::Idle(args) => tokio::runtime::Runtime::new()?.block_on(idle::run(args)),
        Scenario::Fanout(args) => tokio::runtime::Runtime::new()?.block_on(fanout::run(args)),
        Scenario::Messenger(args) => tokio::runtime::Runtime::new()?.block_on(messenger::run(args)),
        Scenario::Churn(args) => tokio::runtime::Runtime::new()?.block_on(churn::run(args)),
        Scenario::Seed(args) => tokio::runtime::Runtime::new()?.block_on(seed::run(args)),
        Scenario::Dashboard(args) => tokio::runtime::Runtime::new()?.block_on(dashboard::run(args)),
    }
}
