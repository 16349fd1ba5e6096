-- chathub schema, version 1: every table the product needs.
--
-- Conventions: ids are UUIDs made by the application (so an actor knows its id
-- before the row commits); times are timestamptz (rendered RFC 3339 UTC on the
-- wire); enumerations are text with CHECK constraints, so a bad value is refused
-- by the database as well as by the parser in src/domain.

-- Staff accounts. Passwords are argon2id PHC strings; nothing else is kept.
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 64),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'developer', 'qa', 'agent')),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);

-- Server-side staff login sessions. Only a SHA-256 of the cookie token is kept,
-- so a database dump holds no usable session.
CREATE TABLE staff_sessions (
    token_hash   bytea PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ip           text,
    user_agent   text
);
CREATE INDEX staff_sessions_user_idx ON staff_sessions (user_id);

-- Machine API keys (n8n, relay bots). The key is shown once; a SHA-256 of it is
-- stored, with a short visible prefix so admins can tell keys apart.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix       text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Websites a widget may sit on. `allowed_origins` containing '*' accepts any
-- origin (the out-of-the-box `default` site, until an admin restricts it).
CREATE TABLE sites (
    id              uuid PRIMARY KEY,
    key             text NOT NULL UNIQUE CHECK (key ~ '^[A-Za-z0-9_-]{1,64}$'),
    name            text NOT NULL,
    allowed_origins text[] NOT NULL DEFAULT '{}',
    greeting        text,
    color           text NOT NULL DEFAULT '#0d6efd',
    position        text NOT NULL DEFAULT 'right' CHECK (position IN ('left', 'right')),
    prechat_form    boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sites (id, key, name, allowed_origins, greeting)
VALUES ('00000000-0000-4000-8000-000000000001', 'default', 'Default site', '{*}',
        'Hi! How can we help you today?');

-- One conversation on any channel.
CREATE TABLE sessions (
    id                 uuid PRIMARY KEY,
    channel            text NOT NULL CHECK (channel IN ('web', 'messenger', 'whatsapp', 'test')),
    -- The channel's own id for the conversation: Messenger PSID, WhatsApp wa_id,
    -- or the relay's session id. NULL for web/test sessions.
    external_id        text,
    site_id            uuid REFERENCES sites (id) ON DELETE SET NULL,
    -- SHA-256 of the visitor's resume token (web/test); the token itself is
    -- only ever held by the visitor's browser.
    visitor_token_hash bytea UNIQUE,
    customer_name      text,
    customer_email     text,
    customer_phone     text,
    metadata           jsonb NOT NULL DEFAULT '{}',
    status             text NOT NULL DEFAULT 'active'
                       CHECK (status IN ('active', 'resolved', 'escalated', 'archived')),
    handler            text NOT NULL DEFAULT 'ai' CHECK (handler IN ('ai', 'human')),
    assignee_id        uuid REFERENCES users (id) ON DELETE SET NULL,
    priority           text NOT NULL DEFAULT 'normal'
                       CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    escalated_at       timestamptz,
    completed_at       timestamptz,
    completion_rule    text,
    qa_status          text NOT NULL DEFAULT 'unchecked'
                       CHECK (qa_status IN ('unchecked', 'passed', 'issue', 'fixed')),
    qa_notes           text,
    qa_by              uuid REFERENCES users (id) ON DELETE SET NULL,
    qa_at              timestamptz,
    dev_feedback       text,
    dev_feedback_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    dev_feedback_at    timestamptz,
    -- Kept by every message write, so the list can filter and sort by
    -- activity without touching messages. Seqs are gap-free and messages
    -- are only deleted with their session, so last_seq is also the count.
    last_seq           bigint NOT NULL DEFAULT 0,
    last_message_at    timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, external_id)
)
-- Every stored message updates its session's counters. Leaving room on each
-- page and indexing none of the counter columns keeps those updates HOT
-- (no index writes), which is most of the cost of a group commit.
WITH (fillfactor = 70);
-- The dashboard's filters and sort orders.
CREATE INDEX sessions_created_idx      ON sessions (created_at DESC);
CREATE INDEX sessions_status_idx       ON sessions (status, created_at DESC);
CREATE INDEX sessions_qa_status_idx    ON sessions (qa_status, created_at DESC);
CREATE INDEX sessions_channel_idx      ON sessions (channel, created_at DESC);
CREATE INDEX sessions_completed_idx    ON sessions (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX sessions_site_idx         ON sessions (site_id, created_at DESC);
CREATE INDEX sessions_escalated_idx    ON sessions (escalated_at) WHERE status = 'escalated';

-- The transcript. (session_id, seq) is the key: seq is assigned by the
-- session's single actor, 1, 2, 3... without gaps.
CREATE TABLE messages (
    session_id    uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq           bigint NOT NULL CHECK (seq > 0),
    role          text NOT NULL CHECK (role IN ('visitor', 'ai', 'agent', 'system')),
    text          text NOT NULL,
    -- The sender's idempotency key (visitor socket, staff `say`): a resend is
    -- stored once and acked with the same seq.
    client_msg_id text CHECK (length(client_msg_id) <= 64),
    -- The channel's message id (Messenger mid, WhatsApp wamid, relay id).
    channel       text NOT NULL,
    external_id   text,
    -- The staff member who wrote an `agent` message.
    author_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    -- For `ai` messages: how long the agent took to answer.
    latency_ms    integer,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, seq),
    UNIQUE (session_id, client_msg_id),
    UNIQUE (channel, external_id)
);
CREATE INDEX messages_created_idx ON messages (created_at);

-- Every QA status change, with who and when.
CREATE TABLE qa_history (
    id          bigserial PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    from_status text NOT NULL,
    to_status   text NOT NULL,
    notes       text,
    user_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    username    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX qa_history_session_idx ON qa_history (session_id, id);

-- Named completion rules, checked on every AI/staff message. `{BOOKING_URL}`
-- in a pattern is replaced by the configured booking URL when rules load.
CREATE TABLE completion_rules (
    id            uuid PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    kind          text NOT NULL CHECK (kind IN ('substring', 'url_prefix', 'regex')),
    pattern       text NOT NULL CHECK (length(pattern) BETWEEN 1 AND 1000),
    enabled       boolean NOT NULL DEFAULT true,
    position      integer NOT NULL DEFAULT 0,
    fire_count    bigint NOT NULL DEFAULT 0,
    last_fired_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO completion_rules (id, name, kind, pattern, position) VALUES
    ('00000000-0000-4000-8000-000000000011', 'booking_link', 'url_prefix', '{BOOKING_URL}', 10),
    ('00000000-0000-4000-8000-000000000012', 'callback_24h', 'substring', 'within 24 hours', 20);

-- Failures reported by the hub itself (agent errors) and by automations
-- (POST /api/errors).
CREATE TABLE errors (
    id         bigserial PRIMARY KEY,
    source     text NOT NULL,
    workflow   text,
    message    text NOT NULL,
    details    jsonb,
    session_id uuid REFERENCES sessions (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX errors_created_idx ON errors (created_at DESC);

-- Transactional outbox: written in the same transaction as the event that
-- causes it, delivered by the notifier. Also the delivery log the dashboard shows.
CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    event_type       text NOT NULL,
    payload          jsonb NOT NULL,
    idempotency_key  text NOT NULL UNIQUE,
    session_id       uuid REFERENCES sessions (id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed', 'dead', 'skipped')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    last_status_code integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE status IN ('pending', 'failed');
CREATE INDEX outbox_created_idx ON outbox (created_at DESC);
