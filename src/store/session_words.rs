//! Each conversation's distinct words (`session_words`, see its migration):
//! kept with every message stored, built for older sessions in batches at
//! start, and read by `session_search` to rule sessions out of a search
//! without reading their messages.

use std::time::Instant;

use uuid::Uuid;

use super::StoreError;
use crate::postgres::Db;

/// A new session's (empty) row, in the transaction that creates it.
pub const CREATE: &str = "INSERT INTO session_words (session_id) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING";

/// Adds one session's new text (its new messages joined by spaces).
pub const ADD_ONE: &str = "UPDATE session_words SET words = words || strip(to_tsvector('simple', $2)) WHERE session_id = $1";

/// Adds many sessions' new messages at once (a big batch), one per row.
pub const ADD_MANY: &str = "UPDATE session_words w SET words = w.words || u.words
     FROM (SELECT id, strip(to_tsvector('simple', string_agg(text, ' '))) AS words
           FROM unnest($1::uuid[], $2::text[]) AS t(id, text) GROUP BY id) u
     WHERE w.session_id = u.id";

/// Whether the words of a session's row can match a search; `$n` is the
/// search text. Only the query's positive words are checked (a phrase as
/// all of its words, negations left out), so it is true for every session
/// with a matching message; a session without a row (not built yet) can
/// always match.
pub fn may_match(session: &str, search: &str) -> String {
    let positive = format!("querytree(websearch_to_tsquery('simple', {search}))");
    format!(
        "CASE WHEN {positive} = 'T' THEN true ELSE coalesce(
           (SELECT w.words @@ regexp_replace({positive}, '<[0-9-]+>', '&', 'g')::tsquery
            FROM session_words w WHERE w.session_id = {session}), true) END"
    )
}

/// Sessions given their row per batch.
const BATCH: i64 = 500;
/// Passes over the sessions at most (a pass skips sessions a write holds).
const PASSES: usize = 5;

/// Gives every session without a row its row, built from its messages, in
/// batches in id order (each its own transaction), passing over the
/// sessions again while any lacks one. A batch locks its sessions first
/// (skipping any a write holds, for the next pass), so a message stored
/// meanwhile is either read here or added to the row by its own write.
/// Returns how many rows were built.
pub async fn backfill(db: &Db) -> Result<u64, StoreError> {
    let started = Instant::now();
    let mut built = 0u64;
    for _ in 0..PASSES {
        if !missing(db).await? {
            break;
        }
        let mut after = Uuid::nil();
        loop {
            let mut client = db.get().await?;
            let tx = client.transaction().await?;
            let ids: Vec<Uuid> = tx
                .query(
                    "SELECT s.id FROM sessions s WHERE s.id > $1 ORDER BY s.id LIMIT $2 FOR UPDATE OF s SKIP LOCKED",
                    &[&after, &BATCH],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let Some(last) = ids.last().copied() else { break };
            let inserted = tx
                .execute(
                    "INSERT INTO session_words (session_id, words)
                     SELECT b.id, coalesce((SELECT strip(to_tsvector('simple', string_agg(m.text, ' ')))
                                            FROM messages m WHERE m.session_id = b.id), '')
                     FROM unnest($1::uuid[]) AS b(id)
                     WHERE NOT EXISTS (SELECT 1 FROM session_words w WHERE w.session_id = b.id)
                     ON CONFLICT DO NOTHING",
                    &[&ids],
                )
                .await?;
            tx.commit().await?;
            if (built + inserted) / 100_000 > built / 100_000 {
                tracing::info!(sessions = built + inserted, "session words: built so far");
            }
            built += inserted;
            after = last;
        }
    }
    if built > 0 {
        tracing::info!(sessions = built, seconds = started.elapsed().as_secs_f64(), "session words built");
    }
    Ok(built)
}

/// Whether any session has no row yet.
async fn missing(db: &Db) -> Result<bool, StoreError> {
    let sql = "SELECT EXISTS (SELECT 1 FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM session_words w WHERE w.session_id = s.id))";
    Ok(db.get().await?.query_one(sql, &[]).await?.get(0))
}
