-- Video calls (SPEC §14): one row per call, written when it ends (ringing →
-- active → ended, or declined / missed / cancelled / failed), and its two
-- participants with when they joined and left. Media never passes through
-- chathub; `quality` is what the clients reported from getStats().
CREATE TABLE calls (
    id              uuid PRIMARY KEY,
    session_id      uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('ended', 'declined', 'missed', 'cancelled', 'failed')),
    started_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    started_by_name text NOT NULL,
    created_at      timestamptz NOT NULL,
    answered_at     timestamptz,
    ended_at        timestamptz NOT NULL,
    duration_secs   integer NOT NULL DEFAULT 0,
    end_reason      text,
    quality         jsonb
);
CREATE INDEX calls_session_idx ON calls (session_id, created_at);

CREATE TABLE call_participants (
    call_id   uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    role      text NOT NULL CHECK (role IN ('staff', 'visitor')),
    user_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    joined_at timestamptz,
    left_at   timestamptz,
    muted     boolean NOT NULL DEFAULT false,
    video_off boolean NOT NULL DEFAULT false,
    PRIMARY KEY (call_id, role)
);
