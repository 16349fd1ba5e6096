//! chathub: a real-time chat hub between visitors (web widget, Messenger,
//! WhatsApp), AI agents, and the staff who supervise them.
//!
//! The map (who talks to whom):
//!
//! ```text
//!  visitor socket ──┐                          ┌──> staff dashboards (supervisor)
//!  webhooks ────────┼─> ChatSession actor ─────┤
//!  relay API ───────┘   (one per conversation) ├──> AI agent (demo | webhook | openai)
//!                                │             └──> persistence actor ──> PostgreSQL
//!                                └─ outbox rows ──> notifier actor ──> n8n, Resend, Meta
//! ```
//!
//! - [`config`]: every setting and its environment variable.
//! - [`startup`]: builds the application (database, actors, HTTP server).
//! - [`postgres`]: pool, migrations, the private-cluster launcher.
//! - [`http`]: routes, one file per group, and the JSON error shape.
//! - [`actors`]: the conversation, persistence and supervisor actors, and the hub.
//! - [`agents`]: the AI agent interface and its backends.
//! - [`completion`]: completion rules.
//! - [`channels`]: Messenger and WhatsApp webhooks (signatures, payloads).
//! - [`delivery`]: outbox targets: n8n, Resend, Meta's send APIs.
//! - [`ws`]: the WebSocket transports and the wire protocol.
//! - [`sites`]: the websites a widget may sit on.
//! - [`sessions`]: sessions as staff see them: summary JSON, filters, stats.
//! - [`auth`]: passwords, API keys, users.
//! - [`domain`]: validated types the rest of the code passes around.
//! - [`telemetry`]: logs and metrics.

pub mod actors;
pub mod agents;
pub mod auth;
pub mod channels;
pub mod client_ip;
pub mod completion;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod http;
pub mod limits;
pub mod outbound;
pub mod postgres;
pub mod protocol;
pub mod sessions;
pub mod state;
pub mod sites;
pub mod startup;
pub mod telemetry;
pub mod ws;
