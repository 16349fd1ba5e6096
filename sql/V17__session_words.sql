-- Each conversation's distinct words (issue #20): a search for a common
-- word walks the session list newest first and must tell quickly whether a
-- session can match; reading every message of a long conversation (a
-- WhatsApp thread of hundreds) to learn that it cannot was the cost.
-- `store::session_search` reads it; `store::conversation_writes` keeps it
-- in the transaction that stores the messages (a row is created with the
-- session, so a row means complete); sessions from before this migration
-- get theirs from `store::session_words::backfill`, in batches, at start.
-- Positions are stripped: it only says which words occur, so a search uses
-- it to rule sessions out and confirms on the messages themselves.
-- No index on `words`, so its updates stay HOT (fillfactor leaves room).
CREATE TABLE session_words (
    session_id uuid PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    words      tsvector NOT NULL DEFAULT ''::tsvector
) WITH (fillfactor = 70);
