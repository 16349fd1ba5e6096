//! Read positions on `sessions` (SPEC §12): `visitor_read_seq` and
//! `staff_read_seq` (with `staff_read_by`). Each only moves forward, never
//! past the conversation's last message; a report that moves nothing writes
//! nothing. And `channel_receipts`: our Messenger/WhatsApp replies by the
//! channel's id, with the delivery status the channel reported.

use uuid::Uuid;

use super::StoreError;
use crate::domain::Seq;
use crate::postgres::Db;

/// The visitor has seen the conversation up to `seq`. `true` if that moved
/// their position.
pub async fn visitor_read(db: &Db, id: Uuid, seq: Seq) -> Result<bool, StoreError> {
    let moved = db
        .get()
        .await?
        .execute(
            "UPDATE sessions SET visitor_read_seq = $2, updated_at = now() WHERE id = $1 AND visitor_read_seq < $2 AND $2 <= last_seq",
            &[&id, &seq],
        )
        .await?;
    Ok(moved == 1)
}

/// Staff member `by` has seen the conversation up to `seq`. `true` if that
/// moved the staff's position.
pub async fn staff_read(db: &Db, id: Uuid, seq: Seq, by: &str) -> Result<bool, StoreError> {
    let moved = db
        .get()
        .await?
        .execute(
            "UPDATE sessions SET staff_read_seq = $2, staff_read_by = $3, updated_at = now()
             WHERE id = $1 AND staff_read_seq < $2 AND $2 <= last_seq",
            &[&id, &seq, &by],
        )
        .await?;
    Ok(moved == 1)
}

/// A reply went out on a channel as `message_id` (mid, wamid).
pub async fn sent_on_channel(db: &Db, message_id: &str, session_id: Uuid, seq: Seq) -> Result<(), StoreError> {
    db.get()
        .await?
        .execute(
            "INSERT INTO channel_receipts (message_id, session_id, seq) VALUES ($1, $2, $3) ON CONFLICT (message_id) DO NOTHING",
            &[&message_id, &session_id, &seq],
        )
        .await?;
    Ok(())
}

/// A channel's status for our message `message_id` (`delivered`, `read`,
/// `failed`), applied only forward (sent → delivered → read; failed only
/// from sent). A `read` also moves the visitor's read position to that
/// message. Returns what moved (nothing for a repeat, a late status, or a
/// message we did not send).
pub async fn channel_status(db: &Db, message_id: &str, status: &str) -> Result<Option<StatusMoved>, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            "UPDATE channel_receipts SET status = $2, updated_at = now()
             WHERE message_id = $1 AND CASE $2 WHEN 'delivered' THEN status = 'sent'
                                               WHEN 'read' THEN status IN ('sent', 'delivered')
                                               WHEN 'failed' THEN status = 'sent' ELSE false END
             RETURNING session_id, seq",
            &[&message_id, &status],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let (session, seq): (Uuid, Seq) = (row.get(0), row.get(1));
    let visitor_read = status == "read" && visitor_read(db, session, seq).await?;
    Ok(Some(StatusMoved { session, seq, visitor_read }))
}

/// A reply's channel status moved forward.
pub struct StatusMoved {
    pub session: Uuid,
    /// The reply's seq.
    pub seq: Seq,
    /// The visitor's read position moved to it as well.
    pub visitor_read: bool,
}

/// Messenger's `read.watermark`: everything we sent `sender` before
/// `watermark_ms` has been read. Returns the session and the visitor's new
/// position when it moved.
pub async fn read_watermark(db: &Db, channel: &str, sender: &str, watermark_ms: i64) -> Result<Option<(Uuid, Seq)>, StoreError> {
    let row = db
        .get()
        .await?
        .query_opt(
            "UPDATE sessions s SET visitor_read_seq = r.seq, updated_at = now()
             FROM (SELECT ss.id, max(m.seq) AS seq FROM sessions ss JOIN messages m ON m.session_id = ss.id
                   WHERE ss.channel = $1 AND ss.external_id = $2 AND m.role <> 'visitor'
                     AND m.created_at <= to_timestamp($3::float8 / 1000)
                   GROUP BY ss.id) r
             WHERE s.id = r.id AND s.visitor_read_seq < r.seq
             RETURNING s.id, s.visitor_read_seq",
            &[&channel, &sender, &(watermark_ms as f64)],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// What the channel reported about our replies in a session: `(seq, status)`.
pub async fn channel_statuses(db: &Db, session_id: Uuid) -> Result<Vec<(Seq, String)>, StoreError> {
    let rows = db.get().await?.query("SELECT seq, status FROM channel_receipts WHERE session_id = $1 ORDER BY seq", &[&session_id]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
