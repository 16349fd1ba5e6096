//! Validated domain types. Input is parsed into these at the edge (HTTP
//! handlers, socket frames, CLI), so the rest of the code never re-checks a
//! bare string.

mod ai_health;
mod attachment;
mod chat;
mod csat;
pub mod email;
pub mod listing;
pub mod role;

pub use ai_health::*;
pub use attachment::*;
pub use chat::*;
pub use csat::*;
pub use role::Role;
