//! Video calls (SPEC §14): a call and its participants are written once,
//! when the call ends, and listed with their session.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use crate::postgres::Db;
use crate::protocol::{rfc3339, rfc3339_opt};

/// One side of a call.
#[derive(Debug, Clone, Serialize)]
pub struct Participant {
    /// `staff` or `visitor`.
    pub role: String,
    pub user_id: Option<Uuid>,
    #[serde(with = "rfc3339_opt")]
    pub joined_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_opt")]
    pub left_at: Option<DateTime<Utc>>,
    pub muted: bool,
    pub video_off: bool,
}

/// A finished call, as the session detail lists it.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub id: Uuid,
    pub session_id: Uuid,
    pub status: String,
    pub started_by: Option<Uuid>,
    pub started_by_name: String,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339_opt")]
    pub answered_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339")]
    pub ended_at: DateTime<Utc>,
    pub duration_secs: i32,
    pub end_reason: Option<String>,
    pub quality: Option<serde_json::Value>,
    pub participants: Vec<Participant>,
}

pub async fn insert(db: &Db, call: &CallRecord) -> Result<(), StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO calls (id, session_id, status, started_by, started_by_name, created_at, answered_at, ended_at, duration_secs, end_reason, quality)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &call.id,
            &call.session_id,
            &call.status,
            &call.started_by,
            &call.started_by_name,
            &call.created_at,
            &call.answered_at,
            &call.ended_at,
            &call.duration_secs,
            &call.end_reason,
            &call.quality,
        ],
    )
    .await?;
    for p in &call.participants {
        tx.execute(
            "INSERT INTO call_participants (call_id, role, user_id, joined_at, left_at, muted, video_off) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&call.id, &p.role, &p.user_id, &p.joined_at, &p.left_at, &p.muted, &p.video_off],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The calls of a session, oldest first.
pub async fn of_session(db: &Db, session_id: Uuid) -> Result<Vec<CallRecord>, StoreError> {
    let client = db.get().await?;
    let rows = client
        .query(
            "SELECT id, session_id, status, started_by, started_by_name, created_at, answered_at, ended_at, duration_secs, end_reason, quality
             FROM calls WHERE session_id = $1 ORDER BY created_at",
            &[&session_id],
        )
        .await?;
    let parts = client
        .query(
            "SELECT p.call_id, p.role, p.user_id, p.joined_at, p.left_at, p.muted, p.video_off
             FROM call_participants p JOIN calls c ON c.id = p.call_id WHERE c.session_id = $1 ORDER BY p.role",
            &[&session_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let id: Uuid = r.get(0);
            CallRecord {
                id,
                session_id: r.get(1),
                status: r.get(2),
                started_by: r.get(3),
                started_by_name: r.get(4),
                created_at: r.get(5),
                answered_at: r.get(6),
                ended_at: r.get(7),
                duration_secs: r.get(8),
                end_reason: r.get(9),
                quality: r.get(10),
                participants: parts
                    .iter()
                    .filter(|p| p.get::<_, Uuid>(0) == id)
                    .map(|p| Participant { role: p.get(1), user_id: p.get(2), joined_at: p.get(3), left_at: p.get(4), muted: p.get(5), video_off: p.get(6) })
                    .collect(),
            }
        })
        .collect())
}
