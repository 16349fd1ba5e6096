-- AI-health alert thresholds (SPEC §16), set by admins: an alert is raised
-- when `metric` over the last `minutes` minutes goes above `max_value`.
CREATE TABLE ai_alert_thresholds (
    metric     text PRIMARY KEY,
    max_value  double precision NOT NULL CHECK (max_value >= 0),
    minutes    integer NOT NULL CHECK (minutes BETWEEN 1 AND 1440),
    updated_at timestamptz NOT NULL DEFAULT now()
);
