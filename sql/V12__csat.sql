-- The customer's verdict (SPEC §16): a 1–5 score and an optional comment,
-- once per session (a second rating within 24 h of the first replaces it),
-- and when Messenger/WhatsApp customers were asked for one by text.
ALTER TABLE sessions
    ADD COLUMN csat_score    smallint CHECK (csat_score BETWEEN 1 AND 5),
    ADD COLUMN csat_comment  text,
    ADD COLUMN csat_at       timestamptz,
    ADD COLUMN csat_asked_at timestamptz;
CREATE INDEX sessions_csat_idx ON sessions (csat_score) WHERE csat_score IS NOT NULL;
