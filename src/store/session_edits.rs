//! Staff changes to a session row: status, priority and assignee; QA (with
//! its history and the `qa.issue` outbox row in one transaction); developer
//! feedback; claim; delete; and the bulk forms. Each returns what changed so
//! the caller can tell the live conversation and the dashboards.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{Priority, QaStatus, SessionStatus};
use crate::postgres::Db;
use crate::protocol::rfc3339;

/// `PUT /api/sessions/{id}`: the fields to change; `None` keeps a field.
pub struct SessionChange {
    pub status: Option<SessionStatus>,
    pub priority: Option<Priority>,
    /// `Some(None)` unassigns.
    pub assignee_id: Option<Option<Uuid>>,
}

/// Applies `change`; escalating stamps `escalated_at` the first time.
pub async fn update(db: &Db, id: Uuid, change: &SessionChange) -> Result<(), StoreError> {
    let changed = db
        .get()
        .await?
        .execute(
            "UPDATE sessions SET
                status = COALESCE($2, status),
                escalated_at = CASE WHEN $2 = 'escalated' AND status <> 'escalated' THEN now() ELSE escalated_at END,
                -- Resolving hands the conversation back to the AI.
                handler = CASE WHEN $2 = 'resolved' THEN 'ai' ELSE handler END,
                priority = COALESCE($3, priority),
                assignee_id = CASE WHEN $4 THEN $5 ELSE assignee_id END,
                updated_at = now()
             WHERE id = $1",
            &[
                &id,
                &change.status.map(SessionStatus::as_str),
                &change.priority.map(Priority::as_str),
                &change.assignee_id.is_some(),
                &change.assignee_id.flatten(),
            ],
        )
        .await?;
    found(changed)
}

fn found(changed: u64) -> Result<(), StoreError> {
    if changed == 0 { Err(StoreError::NotFound("session")) } else { Ok(()) }
}

/// Who is changing QA state.
pub struct Reviewer<'a> {
    pub user_id: Uuid,
    pub username: &'a str,
}

/// Sets the QA status; every change is kept in `qa_history`, and moving to
/// `issue` writes a `qa.issue` outbox row in the same transaction (the QA
/// email). `fixed` is only reachable from `issue` (else a conflict).
/// Returns whether an outbox row was written.
/// `to: None`, or the status it already has, saves the notes alone (no
/// history entry, no email). `notes`: `None` leaves them, `Some(None)`
/// clears them (a status change keeps them then).
pub async fn set_qa(db: &Db, id: Uuid, to: Option<QaStatus>, notes: Option<Option<&str>>, by: Reviewer<'_>) -> Result<bool, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT qa_status, channel, customer_name, customer_email, customer_phone FROM sessions WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .ok_or(StoreError::NotFound("session"))?;
    let from: String = row.get(0);
    let Some(to) = to.filter(|to| to.as_str() != from) else {
        if let Some(notes) = notes {
            tx.execute("UPDATE sessions SET qa_notes = $2, updated_at = now() WHERE id = $1", &[&id, &notes]).await?;
        }
        tx.commit().await?;
        return Ok(false);
    };
    if to == QaStatus::Fixed && from != QaStatus::Issue.as_str() {
        return Err(StoreError::Conflict(format!("only a session with a QA issue can be marked fixed (it is {from})")));
    }
    let notes = notes.flatten();
    tx.execute(
        "UPDATE sessions SET qa_status = $2, qa_notes = COALESCE($3, qa_notes), qa_by = $4, qa_at = now(), updated_at = now()
         WHERE id = $1",
        &[&id, &to.as_str(), &notes, &by.user_id],
    )
    .await?;
    let history_id: i64 = tx
        .query_one(
            "INSERT INTO qa_history (session_id, from_status, to_status, notes, user_id, username)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[&id, &from, &to.as_str(), &notes, &by.user_id, &by.username],
        )
        .await?
        .get(0);
    let flagged = to == QaStatus::Issue && from != QaStatus::Issue.as_str();
    if flagged {
        let payload = json!({
            "session_id": id,
            "channel": row.get::<_, String>(1),
            "customer": {"name": row.get::<_, Option<String>>(2), "email": row.get::<_, Option<String>>(3), "phone": row.get::<_, Option<String>>(4)},
            "qa_notes": notes,
            "flagged_by": by.username,
            "flagged_at": rfc3339::format(&Utc::now()),
        });
        tx.execute(
            "INSERT INTO outbox (event_type, payload, idempotency_key, session_id) VALUES ('qa.issue', $1, $2, $3)",
            &[&payload, &format!("qa.issue/{id}/{history_id}"), &id],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(flagged)
}

/// Sets (or, with empty text, clears) the developer feedback.
pub async fn set_dev_feedback(db: &Db, id: Uuid, text: &str, by: Uuid) -> Result<(), StoreError> {
    let changed = db
        .get()
        .await?
        .execute(
            "UPDATE sessions SET dev_feedback = NULLIF($2, ''), dev_feedback_by = $3, dev_feedback_at = now(), updated_at = now()
             WHERE id = $1",
            &[&id, &text, &by],
        )
        .await?;
    found(changed)
}

/// Assigns the session to `user`.
pub async fn assign(db: &Db, id: Uuid, user: Uuid) -> Result<(), StoreError> {
    let changed = db
        .get()
        .await?
        .execute("UPDATE sessions SET assignee_id = $2, updated_at = now() WHERE id = $1", &[&id, &user])
        .await?;
    found(changed)
}

/// Deletes a session; its messages go with it (ON DELETE CASCADE). Returns
/// its attachments' ids, whose objects the caller deletes next.
pub async fn delete(db: &Db, id: Uuid, tz: chrono_tz::Tz) -> Result<Vec<Uuid>, StoreError> {
    let deleted = delete_many(db, &[id], tz).await?;
    if deleted.sessions.is_empty() {
        return Err(StoreError::NotFound("session"));
    }
    Ok(deleted.attachments)
}

/// What a deletion removed.
pub struct Deleted {
    pub sessions: Vec<Uuid>,
    /// Their attachments (rows gone; the objects are the caller's to delete).
    pub attachments: Vec<Uuid>,
}

/// Sets `status` on those of `ids` that exist and had another; returns them.
pub async fn set_status_of(db: &Db, ids: &[Uuid], status: SessionStatus) -> Result<Vec<Uuid>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(
            "UPDATE sessions SET status = $2, updated_at = now() WHERE id = ANY($1) AND status <> $2 RETURNING id",
            &[&ids, &status.as_str()],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Deletes those of `ids` that exist, with their attachments' rows, in
/// one transaction (which also takes them out of the stats' rollups).
pub async fn delete_many(db: &Db, ids: &[Uuid], tz: chrono_tz::Tz) -> Result<Deleted, StoreError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    super::stats_rollups::forget_sessions(&tx, tz, ids).await?;
    let sessions: Vec<Uuid> = tx.query("DELETE FROM sessions WHERE id = ANY($1) RETURNING id", &[&ids]).await?.iter().map(|r| r.get(0)).collect();
    let attachments: Vec<Uuid> =
        tx.query("DELETE FROM attachments WHERE session_id = ANY($1) RETURNING id", &[&sessions]).await?.iter().map(|r| r.get(0)).collect();
    tx.commit().await?;
    Ok(Deleted { sessions, attachments })
}
