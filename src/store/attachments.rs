//! The `attachments` table (SPEC §12): who may read each stored file and
//! which message carries it. The bytes are in the object store
//! (the `attachments` module above); a row removed here is followed by deleting its
//! object.

use uuid::Uuid;

use super::StoreError;
use crate::domain::{Attachment, Seq};
use crate::postgres::Db;

/// A new upload.
pub struct NewAttachment<'a> {
    pub attachment: &'a Attachment,
    /// The visitor's conversation; `None` for a staff upload (bound when sent).
    pub session_id: Option<Uuid>,
    /// The staff member uploading (`None`: the visitor or a channel).
    pub uploaded_by: Option<Uuid>,
}

pub async fn insert(db: &Db, new: NewAttachment<'_>) -> Result<(), StoreError> {
    let a = new.attachment;
    db.get()
        .await?
        .execute(
            "INSERT INTO attachments (id, session_id, name, content_type, size, uploaded_by) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&a.id, &new.session_id, &a.name, &a.content_type, &a.size, &new.uploaded_by],
        )
        .await?;
    Ok(())
}

/// A stored attachment and where it belongs.
pub struct AttachmentRow {
    pub attachment: Attachment,
    pub session_id: Option<Uuid>,
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<AttachmentRow>, StoreError> {
    let row = db.get().await?.query_opt("SELECT id, name, content_type, size, session_id FROM attachments WHERE id = $1", &[&id]).await?;
    Ok(row.map(|r| AttachmentRow { attachment: from_row(&r), session_id: r.get(4) }))
}

fn from_row(r: &tokio_postgres::Row) -> Attachment {
    Attachment { id: r.get(0), name: r.get(1), content_type: r.get(2), size: r.get(3) }
}

/// Who is sending a message with attachments.
#[derive(Debug, Clone, Copy)]
pub enum Sender {
    /// The visitor: only their own conversation's uploads.
    Visitor,
    /// Staff: uploads by staff, not yet sent elsewhere.
    Staff,
}

/// The attachments of `ids` that `sender` may send in session `session_id`,
/// in the order asked: uploads not yet in a message (the visitor's own, or
/// any staff upload not bound to another conversation), or those already
/// carried by this sender's message `client_msg_id` (a resend). Unknown or
/// unusable ids are left out, so the caller compares lengths.
pub async fn sendable(db: &Db, ids: &[Uuid], session_id: Uuid, sender: Sender, client_msg_id: &str) -> Result<Vec<Attachment>, StoreError> {
    let owner = match sender {
        Sender::Visitor => "session_id = $2 AND uploaded_by IS NULL",
        Sender::Staff => "(session_id IS NULL OR session_id = $2) AND uploaded_by IS NOT NULL",
    };
    let rows = db
        .get()
        .await?
        .query(
            &format!(
                "SELECT a.id, a.name, a.content_type, a.size FROM attachments a
                   JOIN unnest($1::uuid[]) WITH ORDINALITY AS asked (id, n) ON asked.id = a.id
                  WHERE {owner}
                    AND (message_seq IS NULL
                         OR message_seq = (SELECT seq FROM messages WHERE session_id = $2 AND client_msg_id = $3))
                  ORDER BY asked.n"
            ),
            &[&ids, &session_id, &client_msg_id],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Binds attachments to the message `seq` of `session_id` (inside the
/// message's own transaction). Those already in a message stay where they are.
pub async fn bind(tx: &tokio_postgres::Transaction<'_>, session_id: Uuid, seq: Seq, ids: &[Uuid]) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE attachments SET session_id = $1, message_seq = $2 WHERE id = ANY($3) AND message_seq IS NULL",
        &[&session_id, &seq, &ids],
    )
    .await?;
    Ok(())
}

/// Removes the rows of uploads never sent in a message and older than
/// `secs`; returns their ids (their objects are deleted next).
pub async fn remove_unsent(db: &Db, secs: f64, limit: i64) -> Result<Vec<Uuid>, StoreError> {
    let rows = db
        .get()
        .await?
        .query(
            "DELETE FROM attachments WHERE id IN (
                 SELECT id FROM attachments WHERE message_seq IS NULL AND created_at < now() - make_interval(secs => $1)
                  ORDER BY created_at LIMIT $2)
             RETURNING id",
            &[&secs, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The attachments of the message objects a query over `messages` returns,
/// as a JSON array column (NULL when none).
pub(super) const OF_MESSAGE: &str = "(SELECT json_agg(json_build_object('id', a.id, 'name', a.name, 'content_type', a.content_type, 'size', a.size) ORDER BY a.created_at, a.id)
       FROM attachments a WHERE a.session_id = messages.session_id AND a.message_seq = messages.seq)";

/// The attachments in an `OF_MESSAGE` column.
pub(super) fn from_json(value: Option<serde_json::Value>) -> Vec<Attachment> {
    value.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
}
