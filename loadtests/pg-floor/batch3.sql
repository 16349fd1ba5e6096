-- Three exchanges (a visitor message and the demo agent's reply each, in
-- three of the first 50 sessions) in one transaction: the batch the hub
-- commits at fan-out 1000 msg/s (50 publishers, about three exchanges per
-- transaction), in the shape of `store::conversation_writes::
-- store_small_batch`: one INSERT of the six rows, each session's counters
-- and words, the AI latency rollup. Keep it in step with that function.
-- The lookup of the three sessions is included. (pgbench script; `run.sh`
-- drives it.)
\set r random(1, 48)
SELECT array_agg(id ORDER BY n) AS ids, nextval('floor_seq6') AS q FROM floor_sessions WHERE n BETWEEN :r AND :r + 2 \gset
\startpipeline
BEGIN;
INSERT INTO messages (session_id, seq, role, text, client_msg_id, channel, external_id, author_id, latency_ms, created_at) SELECT * FROM unnest(:ids::uuid[] || :ids::uuid[], ARRAY[:q::bigint, :q::bigint+1, :q::bigint+2, :q::bigint+3, :q::bigint+4, :q::bigint+5], ARRAY['visitor','visitor','visitor','ai','ai','ai'], ARRAY['pb 6131061620 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx','pb 6131061620 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx','pb 6131061620 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx','Hmm, that doesn''t look like a valid email address. Could you check it? (for example: name@example.com)','Hmm, that doesn''t look like a valid email address. Could you check it? (for example: name@example.com)','Hmm, that doesn''t look like a valid email address. Could you check it? (for example: name@example.com)'], ARRAY['pb-a' || :q::text, 'pb-b' || :q::text, 'pb-c' || :q::text, NULL, NULL, NULL], ARRAY['web','web','web','web','web','web'], ARRAY[NULL,NULL,NULL,NULL,NULL,NULL]::text[], ARRAY[NULL,NULL,NULL,NULL,NULL,NULL]::uuid[], ARRAY[NULL,NULL,NULL,0,0,0]::int[], ARRAY[now(),now(),now(),now(),now(),now()]);
UPDATE sessions SET last_seq = :q::bigint + 3, last_message_at = CASE WHEN last_message_at IS NULL OR now() >= last_message_at + interval '1 second' THEN now() ELSE last_message_at END WHERE id = (:ids::uuid[])[1];
UPDATE sessions SET last_seq = :q::bigint + 4, last_message_at = CASE WHEN last_message_at IS NULL OR now() >= last_message_at + interval '1 second' THEN now() ELSE last_message_at END WHERE id = (:ids::uuid[])[2];
UPDATE sessions SET last_seq = :q::bigint + 5, last_message_at = CASE WHEN last_message_at IS NULL OR now() >= last_message_at + interval '1 second' THEN now() ELSE last_message_at END WHERE id = (:ids::uuid[])[3];
UPDATE session_words SET words = words || strip(to_tsvector('simple', 'pb 6131061620 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx Hmm, that doesn''t look like a valid email address. Could you check it? (for example: name@example.com)')) WHERE session_id = (:ids::uuid[])[1];
UPDATE session_words SET words = words || strip(to_tsvector('simple', 'pb 6131061620 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx Hmm, that doesn''t look like a valid email address. Could you check it? (for example: name@example.com)')) WHERE session_id = (:ids::uuid[])[2];
UPDATE session_words SET words = words || strip(to_tsvector('simple', 'pb 6131061620 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx Hmm, that doesn''t look like a valid email address. Could you check it? (for example: name@example.com)')) WHERE session_id = (:ids::uuid[])[3];
INSERT INTO ai_latency_rollups (day, channel, bucket, replies) SELECT * FROM unnest(ARRAY[current_date], ARRAY['web'], ARRAY[0]::int4[], ARRAY[3]::int8[]) ON CONFLICT (day, channel, bucket) DO UPDATE SET replies = ai_latency_rollups.replies + excluded.replies;
COMMIT;
\endpipeline
