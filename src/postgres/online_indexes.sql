-- Indexes built after the migrations with CREATE INDEX CONCURRENTLY, so a
-- large existing database keeps taking writes while they are built (one per
-- line; `postgres::build_online_indexes` runs them, logging each, and
-- rebuilds one left invalid by an interrupted build). The expressions must
-- stay exactly those the store's queries use (a unit test checks).

-- Words in messages: full-text search (`websearch_to_tsquery`).
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_text_search_idx ON messages USING gin (to_tsvector('simple', text));
-- Names, emails, phone numbers and channel ids by substring.
CREATE INDEX CONCURRENTLY IF NOT EXISTS sessions_customer_search_idx ON sessions USING gin ((coalesce(customer_name, '') || ' ' || coalesce(customer_email, '') || ' ' || coalesce(customer_phone, '') || ' ' || coalesce(external_id, '')) gin_trgm_ops);
-- Keyset paging of the list, newest first and latest activity first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS sessions_created_id_idx ON sessions (created_at DESC, id DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS sessions_activity_id_idx ON sessions ((COALESCE(last_message_at, created_at)) DESC, id DESC);
-- Sessions changed since the stats rollups' last refresh (`store::stats_rollups`).
CREATE INDEX CONCURRENTLY IF NOT EXISTS sessions_updated_idx ON sessions (updated_at);
-- The stats' escalation counts under any filter, read from the index alone
-- (the open escalations are few among all sessions, but their rows are
-- scattered: 28 ms of heap reads at 1M sessions, 3 ms from this index).
-- Not `last_seq`, which every message changes: covering it would make every
-- message's counter update a non-HOT one (V19).
CREATE INDEX CONCURRENTLY IF NOT EXISTS sessions_escalated_counts_idx ON sessions (created_at) INCLUDE (id, assignee_id, channel, site_id, qa_status, csat_score, completed_at, last_message_at) WHERE status = 'escalated';
