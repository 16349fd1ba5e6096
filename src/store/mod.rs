//! The store layer: every SQL statement of a table group lives in one file
//! here, and nothing above it writes SQL. Stores take the pool, return rows
//! as plain structs, and fail with their own small `StoreError`, which the
//! HTTP edge maps into the one JSON error shape.
//!
//! - `sessions`: the summary row, list pages, transcripts, QA history, export
//!   stream; `session_filter`: the list filters as SQL; `session_search`:
//!   how a search is planned and counted; `session_words`: each
//!   conversation's words, which a search rules sessions out by;
//!   `session_stats`: the dashboard's numbers, from the rollups of
//!   `stats_rollups`; `session_edits`: staff changes to a session row.
//! - `conversations`: what a conversation actor loads and re-reads;
//!   `conversation_writes`: the persistence actor's batched transaction, the
//!   only place session rows and messages are inserted.
//! - `users`, `staff_logins`: accounts, API keys, logins.
//! - `errors`, `deliveries`, `sites`, `rules`: the errors log, the outbox as a
//!   delivery log, sites, completion rules; `ping`: the health probe;
//!   `log_pages`: keyset paging of those logs.
//! - `leases`: which node runs a conversation (several nodes).
//! - `notes`, `canned`: staff's private notes and canned responses.
//! - `email_templates`, `emails`: email to leads, and its tracking.
//! - `reads`: how far the visitor and staff have read each conversation.
//! - `attachments`: who may read each stored file, and the message carrying it.
//! - `calls`: finished video calls and their participants.
//! - `csat`: the customer's rating of a conversation.
//! - `replays`: conversations replayed against today's agent, turn by turn.
//! - `ai_alerts`: AI-health alert thresholds and the `ai.alert` rows they raise.

pub mod ai_alerts;
pub mod attachments;
pub mod calls;
pub mod canned;
pub mod conversation_writes;
pub mod conversations;
pub mod csat;
pub mod deliveries;
pub mod email_templates;
pub mod emails;
pub mod errors;
pub mod leases;
pub mod log_pages;
pub mod notes;
pub mod reads;
pub mod replays;
pub mod rules;
pub mod session_edits;
pub mod session_filter;
pub mod session_search;
pub mod session_words;
pub mod session_stats;
pub mod sessions;
pub mod sites;
pub mod staff_logins;
pub mod stats_rollups;
pub mod users;

use crate::postgres::Db;

/// A round trip to PostgreSQL (the health check).
pub async fn ping(db: &Db) -> Result<(), StoreError> {
    db.get().await?.query_one("SELECT 1", &[]).await?;
    Ok(())
}

use crate::error::ApiError;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row (the thing named).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// Several nodes: these conversations' leases moved to another node, so
    /// this one may no longer write them.
    #[error("the conversation moved to another node")]
    Fenced(Vec<uuid::Uuid>),
    /// PostgreSQL could not be reached, or failed the statement.
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Database(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Database(e.into())
    }
}

/// How the HTTP edge answers a store failure: a database failure keeps the
/// distinction the error layer already draws (unreachable: 503; bad text
/// from the request: 400; anything else: 500).
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Fenced(_) => ApiError::Conflict("the conversation moved to another node; try again".into()),
            StoreError::Database(cause) => match cause.downcast::<tokio_postgres::Error>() {
                Ok(pg) => pg.into(),
                Err(cause) => match cause.downcast::<deadpool_postgres::PoolError>() {
                    Ok(pool) => pool.into(),
                    Err(cause) => ApiError::Internal(cause),
                },
            },
        }
    }
}
