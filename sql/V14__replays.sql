-- Replays (SPEC §16): a conversation's visitor messages sent again to the
-- agent configured now, in a sandbox that writes nothing else. `result`
-- holds every turn (original and replayed answer) and the summary; it is
-- written as sessions finish, so a running replay shows its progress.
CREATE TABLE replays (
    id          uuid PRIMARY KEY,
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    created_by  text NOT NULL,
    note        text,
    session_ids uuid[] NOT NULL,
    result      jsonb NOT NULL DEFAULT '{"sessions": [], "summary": {"turns": 0, "same": 0, "changed": 0, "failed": 0}}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX replays_created_idx ON replays (created_at DESC);
