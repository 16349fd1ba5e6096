-- Bumped whenever AI latency counts of past days change (sessions deleted,
-- the rollups rebuilt): a node keeps the counts of settled days in memory
-- (`store::stats_rollups::latency_histogram`) for as long as it is unchanged.
ALTER TABLE stats_rollup_state ADD COLUMN latency_epoch bigint NOT NULL DEFAULT 0;
