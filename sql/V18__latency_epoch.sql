-- Bumped whenever AI latency counts of past days change (sessions deleted,
-- the rollups rebuilt): a node keeps the counts of settled days in memory
-- (`store::stats_rollups::latency_histogram`) for as long as it is unchanged.
-- It starts at a random value, so a process serving several databases (the
-- tests do) never takes one database's counts for another's.
ALTER TABLE stats_rollup_state ADD COLUMN latency_epoch bigint NOT NULL DEFAULT 0;
UPDATE stats_rollup_state SET latency_epoch = (random() * 1e15)::bigint;
