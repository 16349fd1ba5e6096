//! Validated domain types. Input is parsed into these at the edge (HTTP
//! handlers, socket frames, CLI), so the rest of the code never re-checks a
//! bare string.

mod chat;
pub mod email;
pub mod listing;
pub mod role;

pub use chat::*;
pub use role::Role;
