//! Keyset paging of the logs listed newest first by time, then id (the
//! deliveries and the errors): the condition that seeks past a cursor.

use crate::domain::listing::{LogCursor, PageRequest};

/// The rows after a cursor, with `at` and `id` the placeholders of its time
/// and id (both NULL without one). `created_at <= at` lets the time index
/// start the scan at the cursor, however deep; the pair decides ties.
pub fn after(at: &str, id: &str) -> String {
    format!("({at}::timestamptz IS NULL OR (created_at <= {at} AND (created_at, id) < ({at}, {id}::int8)))")
}

/// The cursor's time and id to bind, and the offset: 0 with a cursor, the
/// page's otherwise.
pub fn bounds(cursor: Option<LogCursor>, page: PageRequest) -> (Option<chrono::DateTime<chrono::Utc>>, Option<i64>, i64) {
    match cursor {
        Some(cursor) => (Some(cursor.at), Some(cursor.id), 0),
        None => (None, None, page.offset()),
    }
}
