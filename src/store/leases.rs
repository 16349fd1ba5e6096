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

/// How long a claim waits for a lease row a write of its holder has locked
/// (a write commits in milliseconds; one that does not is its holder's
/// trouble, and the claim goes on to ask whether the holder answers).
const CLAIM_LOCK_WAIT: Duration = Duration::from_millis(500);
/// How long a takeover waits for the lease row before it ends the gone
/// node's idle transactions, and after.
const TAKEOVER_FIRST_WAIT: Duration = Duration::from_millis(300);
const TAKEOVER_WAIT: Duration = Duration::from_secs(2);

fn secs(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

/// Claims the conversation for `node_id`: a new lease, or the existing one
/// when it expired or is already this node's (the fence grows either way,
/// so an older actor of the same conversation can no longer write).
pub async fn claim(db: &Db, session_id: Uuid, node_id: &str, ttl: Duration) -> Result<Claim, StoreError> {
    let mut client = db.get().await?;
    for _ in 0..2 {
        let tx = waiting_at_most(&mut client, CLAIM_LOCK_WAIT).await?;
        let claimed = tx
            .query_opt(
                "INSERT INTO conversation_leases (session_id, node_id, fence, lease_until)
                 VALUES ($1, $2, 1, now() + make_interval(secs => $3))
                 ON CONFLICT (session_id) DO UPDATE
                    SET node_id = EXCLUDED.node_id, fence = conversation_leases.fence + 1, lease_until = EXCLUDED.lease_until
                  WHERE conversation_leases.lease_until < now() OR conversation_leases.node_id = EXCLUDED.node_id
                 RETURNING fence",
                &[&session_id, &node_id, &secs(ttl)],
            )
            .await;
        match claimed {
            Ok(Some(row)) => {
                tx.commit().await?;
                return Ok(Claim::Owned(row.get(0)));
            }
            // Held, or locked by a write of its holder that is not finishing:
            // either way the holder is asked next whether it answers.
            Ok(None) => tx.commit().await?,
            Err(e) if lock_not_available(&e) => tx.rollback().await?,
            Err(e) => return Err(e.into()),
        }
        let held = client
            .query_opt("SELECT node_id, fence FROM conversation_leases WHERE session_id = $1", &[&session_id])
            .await?;
        match held {
            // Locked by a write of this node's own (an actor stopping): once more.
            Some(row) if row.get::<_, &str>(0) == node_id => {}
            Some(row) => return Ok(Claim::Held { node_id: row.get(0), fence: row.get(1) }),
            // Released between the two statements: claim again.
            None => {}
        }
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
///
/// A node can stop (paused, frozen, cut off) in the middle of a write of
/// the conversation, holding its lease row `FOR SHARE` until its connection
/// ends. When the lease row stays locked, the gone node's transactions left
/// idle are ended (found by `postgres::node_application_name`) and the
/// takeover tries once more. Nothing of theirs had committed, so nothing
/// the gone node acknowledged is lost; a write of its that commits before
/// the takeover is simply read by the new owner.
pub async fn take_over(db: &Db, session_id: Uuid, node_id: &str, from_node: &str, fence: i64, ttl: Duration) -> Result<Option<i64>, StoreError> {
    let mut client = db.get().await?;
    match move_lease(&mut client, session_id, node_id, from_node, fence, ttl, TAKEOVER_FIRST_WAIT).await {
        Err(e) if lock_not_available(&e) => {}
        moved => return Ok(moved?),
    }
    end_idle_transactions(&client, from_node).await;
    Ok(move_lease(&mut client, session_id, node_id, from_node, fence, ttl, TAKEOVER_WAIT).await?)
}

/// One attempt of `take_over`, waiting at most `wait` for the lease row.
async fn move_lease(
    client: &mut deadpool_postgres::Client,
    session_id: Uuid,
    node_id: &str,
    from_node: &str,
    fence: i64,
    ttl: Duration,
    wait: Duration,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let tx = waiting_at_most(client, wait).await?;
    let row = tx
        .query_opt(
            "UPDATE conversation_leases
                SET node_id = $2, fence = fence + 1, lease_until = now() + make_interval(secs => $5)
              WHERE session_id = $1 AND node_id = $3 AND fence = $4
             RETURNING fence",
            &[&session_id, &node_id, &from_node, &fence, &secs(ttl)],
        )
        .await?;
    tx.commit().await?;
    Ok(row.map(|r| r.get(0)))
}

/// Ends the transactions `node_id` left open and idle (best effort: a role
/// that may not end them leaves the takeover to wait for the lock).
async fn end_idle_transactions(client: &deadpool_postgres::Client, node_id: &str) {
    let ended = client
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = $1 AND state LIKE 'idle in transaction%'",
            &[&crate::postgres::node_application_name(node_id)],
        )
        .await;
    match ended {
        Ok(row) if row.get::<_, i64>(0) > 0 => {
            tracing::warn!(node = node_id, transactions = row.get::<_, i64>(0), "ended the open transactions of a node that is gone");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(node = node_id, error = %e, "could not end the open transactions of a node that is gone"),
    }
}

/// A transaction whose statements wait at most `wait` for a lock.
async fn waiting_at_most(client: &mut deadpool_postgres::Client, wait: Duration) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{}ms'", wait.as_millis())).await?;
    Ok(tx)
}

/// A statement gave up waiting for a lock (`lock_timeout`).
fn lock_not_available(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
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
