//! Conversation leases (several nodes): who runs a conversation's actor,
//! until when, and the fencing number every write of that conversation
//! checks (`conversation_writes::check_fences`). A lease is claimed when an
//! actor starts, renewed for all of a node's conversations in one statement,
//! taken over from a node that is gone, and released when the actor stops.

use std::time::Duration;

use uuid::Uuid;

use super::StoreError;
use crate::postgres::Db;

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node holds the lease now, with this fencing number.
    Owned(i64),
    /// Another node holds an unexpired lease.
    Held { node_id: String, fence: i64 },
}

fn secs(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

/// Claims the conversation for `node_id`: a new lease, or the existing one
/// when it expired or is already this node's (the fence grows either way,
/// so an older actor of the same conversation can no longer write).
pub async fn claim(db: &Db, session_id: Uuid, node_id: &str, ttl: Duration) -> Result<Claim, StoreError> {
    let client = db.get().await?;
    for _ in 0..2 {
        let claimed = client
            .query_opt(
                "INSERT INTO conversation_leases (session_id, node_id, fence, lease_until)
                 VALUES ($1, $2, 1, now() + make_interval(secs => $3))
                 ON CONFLICT (session_id) DO UPDATE
                    SET node_id = EXCLUDED.node_id, fence = conversation_leases.fence + 1, lease_until = EXCLUDED.lease_until
                  WHERE conversation_leases.lease_until < now() OR conversation_leases.node_id = EXCLUDED.node_id
                 RETURNING fence",
                &[&session_id, &node_id, &secs(ttl)],
            )
            .await?;
        if let Some(row) = claimed {
            return Ok(Claim::Owned(row.get(0)));
        }
        let held = client
            .query_opt("SELECT node_id, fence FROM conversation_leases WHERE session_id = $1", &[&session_id])
            .await?;
        if let Some(row) = held {
            return Ok(Claim::Held { node_id: row.get(0), fence: row.get(1) });
        }
        // Released between the two statements: claim again.
    }
    Err(StoreError::Conflict("the conversation lease keeps changing hands".into()))
}

/// The node holding the conversation's lease, if any.
pub async fn holder(db: &Db, session_id: Uuid) -> Result<Option<String>, StoreError> {
    let row = db.get().await?.query_opt("SELECT node_id FROM conversation_leases WHERE session_id = $1", &[&session_id]).await?;
    Ok(row.map(|r| r.get(0)))
}

/// Takes the lease over from `from_node` (gone from NATS), if it still holds
/// it with `fence`. `None`: someone else changed it first.
pub async fn take_over(db: &Db, session_id: Uuid, node_id: &str, from_node: &str, fence: i64, ttl: Duration) -> Result<Option<i64>, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            "UPDATE conversation_leases
                SET node_id = $2, fence = fence + 1, lease_until = now() + make_interval(secs => $5)
              WHERE session_id = $1 AND node_id = $3 AND fence = $4
             RETURNING fence",
            &[&session_id, &node_id, &from_node, &fence, &secs(ttl)],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Renews the leases `node_id` holds on `sessions` (its running actors) in
/// one statement; returns the ones it still holds. A lease of an actor that
/// stopped is not renewed and lapses.
pub async fn renew(db: &Db, node_id: &str, sessions: &[Uuid], ttl: Duration) -> Result<Vec<(Uuid, i64)>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(
            "UPDATE conversation_leases SET lease_until = now() + make_interval(secs => $3)
              WHERE node_id = $1 AND session_id = ANY($2) RETURNING session_id, fence",
            &[&node_id, &sessions, &secs(ttl)],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Releases one lease, if this node still holds it with `fence`.
pub async fn release(db: &Db, session_id: Uuid, node_id: &str, fence: i64) -> Result<(), StoreError> {
    db.get()
        .await?
        .execute(
            "DELETE FROM conversation_leases WHERE session_id = $1 AND node_id = $2 AND fence = $3",
            &[&session_id, &node_id, &fence],
        )
        .await?;
    Ok(())
}

/// Releases every lease of `node_id` (a clean shutdown), so other nodes
/// claim its conversations at once instead of waiting for expiry.
pub async fn release_all(db: &Db, node_id: &str) -> Result<u64, StoreError> {
    Ok(db.get().await?.execute("DELETE FROM conversation_leases WHERE node_id = $1", &[&node_id]).await?)
}
