-- Files sent in conversations (SPEC §12). The bytes live in the object
-- store under the id; this row says who may read them. `session_id` has no
-- foreign key: a visitor may upload before their conversation's row is
-- written (it is stored with the first message). A staff upload has no
-- conversation until it is sent. `message_seq` is set when a message
-- carries it; an upload never sent is removed after a day, and deleting a
-- session deletes its attachments (both in `store::attachments`).
CREATE TABLE attachments (
    id           uuid PRIMARY KEY,
    session_id   uuid,
    message_seq  bigint,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    content_type text NOT NULL,
    size         bigint NOT NULL CHECK (size >= 0),
    -- The staff member who uploaded it (NULL: the visitor or a channel).
    uploaded_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_message_idx ON attachments (session_id, message_seq);
CREATE INDEX attachments_unsent_idx ON attachments (created_at) WHERE message_seq IS NULL;
