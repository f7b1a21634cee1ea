-- Experiment tracking (MLflow's model): experiments and their tags, runs with
-- params, tags, the full metric history and each key's latest value. Every
-- experiment and run belongs to a project (tenancy); experiment ids are
-- per-server integers shown as decimal strings, run ids 32 lowercase hex.
-- Column names are the contract the search-filter compiler writes SQL against.
CREATE TABLE experiments (
  experiment_id INTEGER PRIMARY KEY,
  project_id TEXT NOT NULL,
  name TEXT NOT NULL,
  artifact_location TEXT,
  lifecycle_stage TEXT NOT NULL DEFAULT 'active',
  creation_time BIGINT,
  last_update_time BIGINT,
  UNIQUE (project_id, name)
);
-- experiments/search lists one project's experiments, newest first by default
CREATE INDEX experiments_project_created ON experiments (project_id, creation_time);

CREATE TABLE experiment_tags (
  experiment_id INTEGER NOT NULL,
  key TEXT NOT NULL,
  value TEXT,
  PRIMARY KEY (experiment_id, key)
);

-- MLflow clients expect experiment "0" (Default) to exist: each project gets
-- its own Default experiment, created on first use, and "0" names it.
CREATE TABLE project_default_experiments (
  project_id TEXT PRIMARY KEY,
  experiment_id INTEGER NOT NULL
);

CREATE TABLE runs (
  run_uuid TEXT PRIMARY KEY,
  experiment_id INTEGER NOT NULL,
  project_id TEXT NOT NULL,
  name TEXT,
  user_id TEXT,
  status TEXT NOT NULL,
  start_time BIGINT,
  end_time BIGINT,
  lifecycle_stage TEXT NOT NULL DEFAULT 'active',
  artifact_uri TEXT,
  deleted_time BIGINT
);
-- runs/search: runs of some experiments, by default newest first, run_uuid
-- breaking ties
CREATE INDEX runs_experiment_start ON runs (experiment_id, start_time, run_uuid);
CREATE INDEX runs_project ON runs (project_id);

CREATE TABLE params (
  run_uuid TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_uuid, key)
);
-- filters like params.lr = '0.01' across runs
CREATE INDEX params_key_value ON params (key, value);

CREATE TABLE tags (
  run_uuid TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT,
  PRIMARY KEY (run_uuid, key)
);
CREATE INDEX tags_key_value ON tags (key, value);

-- The full history. An identical point logged twice is stored once (MLflow
-- does the same), which also makes replayed batches idempotent. The key's
-- leading columns are the get-history order, so a history is one range scan.
-- WITHOUT ROWID: the rows live in the key's b-tree, so a point is written
-- once, not to a table and again to its key's index (1.6x the insert rate).
CREATE TABLE metrics (
  run_uuid TEXT NOT NULL,
  key TEXT NOT NULL,
  value REAL NOT NULL,
  timestamp BIGINT NOT NULL,
  step BIGINT NOT NULL DEFAULT 0,
  is_nan INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_uuid, key, step, timestamp, value, is_nan)
) WITHOUT ROWID;

-- Each (run, key)'s latest point, kept on every write with MLflow's rule:
-- the highest step, then the highest timestamp, then the highest value.
CREATE TABLE latest_metrics (
  run_uuid TEXT NOT NULL,
  key TEXT NOT NULL,
  value REAL NOT NULL,
  timestamp BIGINT NOT NULL,
  step BIGINT NOT NULL DEFAULT 0,
  is_nan INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (run_uuid, key)
);
-- filters and order_by on metrics.<key> across runs
CREATE INDEX latest_metrics_key_value ON latest_metrics (key, value);
