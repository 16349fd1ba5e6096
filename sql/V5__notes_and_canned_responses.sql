-- Private notes staff leave on a conversation (never sent anywhere), and
-- the canned responses staff insert with /shortcut (SPEC §11).
CREATE TABLE session_notes (
    id         uuid PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    author_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    text       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_notes_session_idx ON session_notes (session_id, created_at);

CREATE TABLE canned_responses (
    id         uuid PRIMARY KEY,
    shortcut   text NOT NULL UNIQUE,
    title      text NOT NULL,
    text       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
