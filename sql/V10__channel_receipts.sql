-- Our replies on Messenger and WhatsApp, by the channel's message id (mid,
-- wamid), with what the channel reported about each (WhatsApp: sent →
-- delivered → read, or failed), so a status finds the message it is about.
CREATE TABLE channel_receipts (
    message_id text PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    status     text NOT NULL DEFAULT 'sent' CHECK (status IN ('sent', 'delivered', 'read', 'failed')),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channel_receipts_session_idx ON channel_receipts (session_id, seq);
