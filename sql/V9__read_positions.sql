-- Read receipts (SPEC §12): how far the visitor has read (staff and AI
-- messages up to this seq were shown to them), and how far staff have read
-- (visitor messages up to this seq), with who read last. Only ever raised.
ALTER TABLE sessions
    ADD COLUMN visitor_read_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN staff_read_seq   bigint NOT NULL DEFAULT 0,
    ADD COLUMN staff_read_by    text;
