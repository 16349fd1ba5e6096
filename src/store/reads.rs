//! Read positions on `sessions` (SPEC §12): `visitor_read_seq` and
//! `staff_read_seq` (with `staff_read_by`). Each only moves forward, never
//! past the conversation's last message; a report that moves nothing writes
//! nothing.

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
