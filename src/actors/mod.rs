//! The actors and the hub that wires them together.
//!
//! - [`chat_session::ChatSession`]: one per live conversation; owns its
//!   transcript and `seq`, calls the agent, runs completion rules, fans out.
//! - [`persistence::Persistence`]: group-commits every conversation's writes.
//! - [`supervisor::Supervisor`]: receives every conversation event for the
//!   staff dashboards.
//! - [`notifier::Notifier`]: delivers outbox rows to n8n, Resend and Meta.
//! - [`hub::Hub`]: the registry of live conversations and what they share.
//! - [`handles`]: the typed handles, the only way in from outside `actors/`.
//! - [`cluster`]: several nodes: leases, the remote side of `SessionHandle`,
//!   and what a node serves to the others over the bus.
//! - [`ai_watch`]: the AI-health card pushed to dashboards, and its alerts.
//! - [`replay`]: conversations replayed against today's agent, in a sandbox.
//! - [`stats_watch`]: the rollup job, and stats pushed once per filter to dashboards.
//! - [`index_upkeep`]: the search indexes' pending entries, flushed out of band.

pub mod ai_watch;
pub mod chat_session;
pub mod cluster;
pub mod handles;
pub mod hub;
pub mod index_upkeep;
pub mod notifier;
pub mod persistence;
pub mod replay;
pub mod stats_watch;
pub mod supervisor;

pub use handles::{Busy, HubActors, NotifierHandle, PersistenceHandle, SessionHandle, SupervisorHandle};
pub use hub::Hub;
