//! Ratings on `sessions` (SPEC §16): `csat_score` and `csat_comment`, once
//! per session; a second rating within 24 h of the first replaces it.

use uuid::Uuid;

use super::StoreError;
use crate::domain::Csat;
use crate::postgres::Db;

/// What became of a rating.
#[derive(Debug, PartialEq, Eq)]
pub enum Rated {
    Stored,
    /// The session was rated more than 24 h ago: the rating stands.
    Closed,
    /// No such (stored) session.
    Unknown,
}

pub async fn rate(db: &Db, id: Uuid, csat: &Csat) -> Result<Rated, StoreError> {
    let client = db.get().await?;
    let stored = client
        .execute(
            "UPDATE sessions SET csat_score = $2, csat_comment = $3, csat_at = COALESCE(csat_at, now()), updated_at = now()
             WHERE id = $1 AND (csat_at IS NULL OR csat_at > now() - interval '24 hours')",
            &[&id, &csat.score, &csat.comment],
        )
        .await?;
    if stored == 1 {
        return Ok(Rated::Stored);
    }
    let exists = client.query_opt("SELECT 1 FROM sessions WHERE id = $1", &[&id]).await?.is_some();
    Ok(if exists { Rated::Closed } else { Rated::Unknown })
}
