-- One visitor message and the demo agent's reply, stored the way
-- `store::conversation_writes::store_small_batch` stores an exchange: one
-- pipeline of BEGIN, the two rows, the session's counters, its words, the
-- AI latency rollup, COMMIT. Keep it in step with that function.
-- (pgbench script; `run.sh` drives it.)
\set r random(1, 1000)
SELECT id AS sid, nextval('floor_seq') AS s1 FROM floor_sessions WHERE n = :r \gset
\startpipeline
BEGIN;
INSERT INTO messages (session_id, seq, role, text, client_msg_id, channel, external_id, author_id, latency_ms, created_at) SELECT * FROM unnest(ARRAY[:sid::uuid, :sid::uuid], ARRAY[:s1::bigint, :s1::bigint + 1], ARRAY['visitor', 'ai'], ARRAY['pb 6131061620 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 'Hmm, that doesn''t look like a valid email address. Could you check it? (for example: name@example.com)'], ARRAY['pb-' || :s1::text, NULL], ARRAY['web', 'web'], ARRAY[NULL, NULL]::text[], ARRAY[NULL, NULL]::uuid[], ARRAY[NULL, 0]::int[], ARRAY[now(), now()]);
UPDATE sessions SET last_seq = :s1::bigint + 1, last_message_at = CASE WHEN last_message_at IS NULL OR now() >= last_message_at + interval '1 second' THEN now() ELSE last_message_at END WHERE id = :sid::uuid;
UPDATE session_words SET words = words || strip(to_tsvector('simple', 'pb 6131061620 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx Hmm, that doesn''t look like a valid email address. Could you check it? (for example: name@example.com)')) WHERE session_id = :sid::uuid;
INSERT INTO ai_latency_rollups (day, channel, bucket, replies) SELECT * FROM unnest(ARRAY[current_date], ARRAY['web'], ARRAY[0]::int4[], ARRAY[1]::int8[]) ON CONFLICT (day, channel, bucket) DO UPDATE SET replies = ai_latency_rollups.replies + excluded.replies;
COMMIT;
\endpipeline
