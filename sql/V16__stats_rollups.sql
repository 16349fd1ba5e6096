-- The dashboard's stats from rollups (issue #20): answering from a few
-- thousand rows instead of every session and message ever stored.
-- `store::stats_rollups` keeps them and reads them; its module doc says how
-- they stay exact.

-- Sessions with at least one message, counted per local day of creation (in
-- TIMEZONE) and per value of each dimension the stats filter or group by.
-- The job rewrites a whole day at a time from `sessions`, so rows have no
-- identity of their own.
CREATE TABLE session_rollups (
    day            date NOT NULL,
    site_id        uuid,
    channel        text NOT NULL,
    status         text NOT NULL,
    qa_status      text NOT NULL,
    csat_score     smallint,
    -- The local day the session completed on; NULL: not completed.
    completed_day  date,
    sessions       bigint NOT NULL,
    -- The sum of the sessions' `last_seq`: their message count.
    messages       bigint NOT NULL
);
CREATE INDEX session_rollups_day_idx ON session_rollups (day);

-- When each day's rollup rows were last rewritten (the job re-checks the
-- day rewritten longest ago, so anything it missed heals within minutes).
CREATE TABLE session_rollup_days (
    day         date PRIMARY KEY,
    computed_at timestamptz NOT NULL
);

-- The job's one row.
CREATE TABLE stats_rollup_state (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- The TIMEZONE the days are in; NULL until the first build.
    timezone  text,
    -- Sessions changed at or after this instant (less an overlap for
    -- transactions still committing) may not be in the rollups yet.
    watermark timestamptz,
    -- Moves whenever a refresh rewrote anything (nodes push fresh stats
    -- to their dashboards when it moves).
    version   bigint NOT NULL DEFAULT 0
);
INSERT INTO stats_rollup_state DEFAULT VALUES;

-- The creation times of deleted sessions, until the job has rewritten their
-- days (a deleted row leaves no change time to find it by).
CREATE TABLE stats_dirty (created_at timestamptz NOT NULL);

-- AI replies per local day of the reply, channel and latency bucket
-- (`store::stats_rollups::latency_bucket`: exact below 100 ms, 1 % wide
-- above), counted in the transaction that stores them.
CREATE TABLE ai_latency_rollups (
    day     date NOT NULL,
    channel text NOT NULL,
    bucket  integer NOT NULL,
    replies bigint NOT NULL,
    PRIMARY KEY (day, channel, bucket)
);
