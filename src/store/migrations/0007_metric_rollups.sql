-- A downsampled copy of every metric history, kept at write time so that a
-- chart of a million-point series reads a thousand rows, not a million.
-- One row per (run, key, 1024-step bucket: step >> 10): how many points were
-- logged into it, and four of its points — the first and the last in
-- (step, timestamp) order, and the lowest and highest value (NaN never
-- counts as either; NULL when every point is NaN).
CREATE TABLE metric_rollups (
  run_uuid TEXT NOT NULL,
  key TEXT NOT NULL,
  bucket BIGINT NOT NULL,
  n BIGINT NOT NULL,
  first_step BIGINT NOT NULL,
  first_ts BIGINT NOT NULL,
  first_value REAL NOT NULL,
  first_nan INTEGER NOT NULL,
  last_step BIGINT NOT NULL,
  last_ts BIGINT NOT NULL,
  last_value REAL NOT NULL,
  last_nan INTEGER NOT NULL,
  lo_step BIGINT,
  lo_ts BIGINT,
  lo_value REAL,
  hi_step BIGINT,
  hi_ts BIGINT,
  hi_value REAL,
  PRIMARY KEY (run_uuid, key, bucket)
);

-- Histories logged before this migration get their rows here, once.
INSERT INTO metric_rollups (run_uuid, key, bucket, n, first_step, first_ts, first_value, first_nan,
                            last_step, last_ts, last_value, last_nan)
SELECT run_uuid, key, step >> 10, COUNT(*), 0, 0, 0, 0, 0, 0, 0, 0
FROM metrics GROUP BY run_uuid, key, step >> 10;

UPDATE metric_rollups SET (first_step, first_ts, first_value, first_nan) = (
  SELECT step, timestamp, value, is_nan FROM metrics m
  WHERE m.run_uuid = metric_rollups.run_uuid AND m.key = metric_rollups.key
    AND m.step BETWEEN metric_rollups.bucket * 1024 AND metric_rollups.bucket * 1024 + 1023
  ORDER BY step, timestamp LIMIT 1);
UPDATE metric_rollups SET (last_step, last_ts, last_value, last_nan) = (
  SELECT step, timestamp, value, is_nan FROM metrics m
  WHERE m.run_uuid = metric_rollups.run_uuid AND m.key = metric_rollups.key
    AND m.step BETWEEN metric_rollups.bucket * 1024 AND metric_rollups.bucket * 1024 + 1023
  ORDER BY step DESC, timestamp DESC LIMIT 1);
UPDATE metric_rollups SET (lo_step, lo_ts, lo_value) = (
  SELECT step, timestamp, value FROM metrics m
  WHERE m.run_uuid = metric_rollups.run_uuid AND m.key = metric_rollups.key
    AND m.step BETWEEN metric_rollups.bucket * 1024 AND metric_rollups.bucket * 1024 + 1023 AND m.is_nan = 0
  ORDER BY value, step LIMIT 1);
UPDATE metric_rollups SET (hi_step, hi_ts, hi_value) = (
  SELECT step, timestamp, value FROM metrics m
  WHERE m.run_uuid = metric_rollups.run_uuid AND m.key = metric_rollups.key
    AND m.step BETWEEN metric_rollups.bucket * 1024 AND metric_rollups.bucket * 1024 + 1023 AND m.is_nan = 0
  ORDER BY value DESC, step LIMIT 1);
