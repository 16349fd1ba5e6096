-- Substring search over customer names, emails, phones and ids uses trigram
-- indexes (pg_trgm, a trusted extension: the database owner may create it).
-- The indexes themselves are built without blocking writes, outside any
-- transaction, after the migrations: see src/postgres/online_indexes.sql.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
