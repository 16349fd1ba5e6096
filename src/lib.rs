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
//!  Resend webhook ──> email tracking (store) ──> supervisor ──> dashboards
//! ```
//!
//! The floors: a module may use what stands below it, never what stands
//! above, and no two modules use each other (`tests/layering.rs` checks
//! both, and that only `actors` names actix).
//!
//! ```text
//!  startup                      wires everything, owns the shutdown order
//!  http  ws  state              transports: parse at the edge, call handles and the data layer
//!  actors (handles)             conversations, supervisor, persistence, notifier; only handles leave
//!  agents delivery channels     outside services: AI agents, n8n/Resend/Meta, Meta's webhooks
//!  sites completion email       the websites a widget may sit on, completion rules, email templates,
//!  attachments                  the object store holding files sent in conversations
//!  auth client_ip limits        passwords, logins, API keys; who the client is; per-IP limits;
//!  ai_health                    the AI's health counters over a sliding window
//!  store                        every SQL statement, one file per table group
//!  domain protocol error        validated types, frames and codes, the one error shape
//!  outbound                     the bounded writer queue of every socket
//!  bus                          NATS between the nodes of a cluster (subjects, bounded publish)
//!  postgres config telemetry    pool, migrations, the private cluster; settings; logs/metrics
//! ```
//!
//! - [`startup`]: builds the application (database, actors, HTTP server).
//! - [`http`]: routes, one file per group, mounted from one route table.
//! - [`ws`]: the visitor and dashboard sockets and the handoff from HTTP.
//! - [`state`]: what every handler and socket shares.
//! - [`actors`]: conversation, persistence, supervisor and notifier actors,
//!   the hub (registry of live conversations) and the typed handles.
//! - [`agents`]: the AI agent interface and its backends.
//! - [`delivery`]: outbox targets: n8n, Resend, Meta's send APIs.
//! - [`channels`]: Messenger and WhatsApp webhooks (signatures, payloads).
//! - [`sites`]: the websites a widget may sit on.
//! - [`completion`]: completion rules.
//! - [`attachments`]: the object store (local directory or S3) holding the
//!   files sent in conversations, and the sniffing of their types.
//! - [`email`]: email templates (variables, HTML and text) and the
//!   Standard Webhooks signatures of Resend's webhook and our n8n deliveries.
//! - [`auth`]: passwords, staff logins, API keys, users, access rules.
//! - [`store`]: every SQL statement, one file per table group; returns plain
//!   rows and its own `StoreError`.
//! - [`client_ip`]: the client's address behind trusted proxies.
//! - [`limits`]: per-IP socket caps, new conversations per IP, rate limits.
//! - [`ai_health`]: replies, latency, timeouts, fallbacks, errors, loops and
//!   stuck typing per minute, for the health card and its alerts.
//! - [`domain`]: validated types the rest of the code passes around.
//! - [`protocol`]: the wire frames, error codes and close codes.
//! - [`error`]: the one JSON error shape and the HTTP status of each failure.
//! - [`outbound`]: each socket's bounded queue of frames.
//! - [`bus`]: the NATS connection between nodes (several nodes).
//! - [`postgres`]: pool, migrations, the private-cluster launcher.
//! - [`config`]: every setting and its environment variable.
//! - [`telemetry`]: logs and metrics.

pub mod actors;
pub mod agents;
pub mod ai_health;
pub mod attachments;
pub mod auth;
pub mod bus;
pub mod channels;
pub mod client_ip;
pub mod completion;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod email;
pub mod error;
pub mod http;
pub mod limits;
pub mod outbound;
pub mod postgres;
pub mod protocol;
pub mod state;
pub mod store;
pub mod sites;
pub mod startup;
pub mod telemetry;
pub mod ws;
