-- The metric history as chunks: one row holds up to 1024 consecutive points
-- of one (run, key) series, delta-encoded in a blob (src/track/series.c), so
-- a log-batch of 1000 points over 10 keys writes about 10 rows, not 1000.
-- Chunks of a series never overlap in (step, timestamp, value, is_nan)
-- order: a history is one ordered scan, and a point can only already exist
-- in the one chunk whose range holds it.
-- Each chunk carries a summary — its first and last point, its lowest and
-- highest value (NULL when every point is NaN), its timestamp range and
-- its size — that charts read instead of the points (track/sampled.c), so
-- the write-time rollups of 0007 are no longer kept.
-- A chunk with a NULL blob holds exactly one point: its first/last columns.
CREATE TABLE metric_chunks (
  run_uuid TEXT NOT NULL,
  key TEXT NOT NULL,
  last_step BIGINT NOT NULL,
  last_ts BIGINT NOT NULL,
  last_value REAL NOT NULL,
  last_nan INTEGER NOT NULL,
  first_step BIGINT NOT NULL,
  first_ts BIGINT NOT NULL,
  first_value REAL NOT NULL,
  first_nan INTEGER NOT NULL,
  min_ts BIGINT NOT NULL,
  max_ts BIGINT NOT NULL,
  n INTEGER NOT NULL,
  lo_step BIGINT,
  lo_ts BIGINT,
  lo_value REAL,
  hi_step BIGINT,
  hi_ts BIGINT,
  hi_value REAL,
  points BLOB
);
-- Ordered by each chunk's last point (the chunk that may hold a point is the
-- first one whose last point is not below it) and covering every summary
-- column, so histories, tails and charts find their chunks without reading
-- the table; only a chunk's points need the row.
CREATE INDEX metric_chunks_series ON metric_chunks (run_uuid, key, last_step, last_ts, last_value, last_nan,
  first_step, first_ts, first_value, first_nan, min_ts, max_ts, n, lo_step, lo_ts, lo_value, hi_step, hi_ts, hi_value);

-- Histories logged before this migration become one-point chunks; the next
-- points appended to a series merge into its small tail chunk.
INSERT INTO metric_chunks (run_uuid, key, last_step, last_ts, last_value, last_nan, first_step, first_ts,
                           first_value, first_nan, min_ts, max_ts, n, lo_step, lo_ts, lo_value, hi_step, hi_ts,
                           hi_value, points)
SELECT run_uuid, key, step, timestamp, value, is_nan, step, timestamp, value, is_nan, timestamp, timestamp, 1,
       CASE WHEN is_nan = 0 THEN step END, CASE WHEN is_nan = 0 THEN timestamp END, CASE WHEN is_nan = 0 THEN value END,
       CASE WHEN is_nan = 0 THEN step END, CASE WHEN is_nan = 0 THEN timestamp END, CASE WHEN is_nan = 0 THEN value END,
       NULL
FROM metrics;
DROP TABLE metrics;
DROP TABLE metric_rollups;
