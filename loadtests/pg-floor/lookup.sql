-- The session lookup alone, to subtract from `exchange.sql`'s figure.
\set r random(1, 1000)
SELECT id AS sid, nextval('floor_seq') AS s1 FROM floor_sessions WHERE n = :r \gset
