-- Run inputs (datasets, as MLflow's runs/log-inputs) and MLflow 3's logged
-- models. A dataset is stored once per (experiment, name, digest), as
-- MLflow dedups it; a run points at the datasets it used, with the input's
-- own tags (mlflow.data.context, ...). Logged models belong to an
-- experiment (and so to its project) and carry params and tags.
CREATE TABLE datasets (
  dataset_uuid TEXT PRIMARY KEY,
  experiment_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  digest TEXT NOT NULL,
  source_type TEXT NOT NULL,
  source TEXT NOT NULL,
  schema TEXT,
  profile TEXT,
  UNIQUE (experiment_id, name, digest)
);

-- One row per (run, dataset); logging the same dataset to a run again
-- changes nothing (MLflow keeps the first input and its tags).
CREATE TABLE run_dataset_inputs (
  run_uuid TEXT NOT NULL,
  dataset_uuid TEXT NOT NULL,
  seq BIGINT NOT NULL,
  PRIMARY KEY (run_uuid, dataset_uuid)
);

CREATE TABLE run_input_tags (
  run_uuid TEXT NOT NULL,
  dataset_uuid TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_uuid, dataset_uuid, key)
);

-- RunInputs.model_inputs: logged models a run used.
CREATE TABLE run_model_inputs (
  run_uuid TEXT NOT NULL,
  model_id TEXT NOT NULL,
  PRIMARY KEY (run_uuid, model_id)
);

CREATE TABLE logged_models (
  model_id TEXT PRIMARY KEY,
  experiment_id INTEGER NOT NULL,
  project_id TEXT NOT NULL,
  name TEXT NOT NULL,
  artifact_location TEXT,
  creation_timestamp_ms BIGINT NOT NULL,
  last_updated_timestamp_ms BIGINT NOT NULL,
  status TEXT NOT NULL,
  lifecycle_stage TEXT NOT NULL DEFAULT 'active',
  model_type TEXT,
  source_run_id TEXT,
  status_message TEXT
);
-- logged-models/search: one project's models of some experiments, newest first
CREATE INDEX logged_models_experiment ON logged_models (experiment_id, creation_timestamp_ms);
CREATE INDEX logged_models_run ON logged_models (source_run_id);

CREATE TABLE logged_model_params (
  model_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (model_id, key)
);

CREATE TABLE logged_model_tags (
  model_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (model_id, key)
);
