-- A stored message updates its session's `last_seq` (and, at most once a
-- second, `last_message_at`: see `store::conversation_writes`). That
-- update is kept HOT (heap-only: no new entry in any of the table's
-- sixteen indexes) when no index covers `last_seq` and the row's page has
-- room for the new version. At 5,000 messages/s the non-HOT form spent 28 %
-- of the core (pinned, with the hub) inserting those entries into btrees
-- and clearing out the old ones; 10 % once most updates were HOT.
--
-- Room on the page: new pages are filled to 80 % (existing pages keep
-- what they hold; old, quiet sessions are rarely updated).
ALTER TABLE sessions SET (fillfactor = 80);
-- The escalation counts' covering index covered `last_seq`; it is rebuilt
-- without it, concurrently, by `online_indexes.sql`
-- (`sessions_escalated_counts_idx`). Dropping it only edits the catalog.
DROP INDEX IF EXISTS sessions_escalated_cover_idx;
