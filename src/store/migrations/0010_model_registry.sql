-- The model registry (MLflow's registered models, model versions, tags and
-- aliases), per project: a name is unique within its project only, so rows
-- hang off a numeric model id and another project's "churn" is a different
-- model. Renaming touches one row (and the versions' copy of the name).
CREATE TABLE registered_models (
  id INTEGER PRIMARY KEY,
  project_id TEXT NOT NULL,
  name TEXT NOT NULL,
  description TEXT,
  user_id TEXT,
  creation_time BIGINT NOT NULL,
  last_updated_time BIGINT NOT NULL,
  -- the highest version number ever given: numbers are never reused after
  -- a version is deleted, as MLflow
  last_version BIGINT NOT NULL DEFAULT 0,
  UNIQUE (project_id, name)
);

CREATE TABLE registered_model_tags (
  model_id INTEGER NOT NULL,
  key TEXT NOT NULL,
  value TEXT,
  PRIMARY KEY (model_id, key)
);

CREATE TABLE registered_model_aliases (
  model_id INTEGER NOT NULL,
  alias TEXT NOT NULL,
  version BIGINT NOT NULL,
  PRIMARY KEY (model_id, alias)
);

-- name repeats the model's name so version filters and orderings read one
-- table (search compiles `name = ...` against v.name). seq grows with every
-- version created anywhere: a search's page tokens carry the highest seq
-- seen on the first page, so versions created while paging do not shift
-- later pages. model_id_ref is MLflow 3's logged model id (model_id on the
-- wire; model_id here is the registered model).
CREATE TABLE model_versions (
  model_id INTEGER NOT NULL,
  version BIGINT NOT NULL,
  seq BIGINT NOT NULL UNIQUE,
  project_id TEXT NOT NULL,
  name TEXT NOT NULL,
  creation_time BIGINT NOT NULL,
  last_updated_time BIGINT NOT NULL,
  user_id TEXT,
  current_stage TEXT NOT NULL DEFAULT 'None',
  description TEXT,
  source TEXT NOT NULL,
  -- where the files are: the source with runs:/ and models:/ resolved to
  -- the run's or logged model's artifact location (get-download-uri)
  storage_location TEXT NOT NULL,
  run_id TEXT,
  run_link TEXT,
  model_id_ref TEXT,
  status TEXT NOT NULL,
  status_message TEXT,
  PRIMARY KEY (model_id, version)
);
CREATE INDEX model_versions_project ON model_versions (project_id, name, version);
CREATE INDEX model_versions_run ON model_versions (run_id);

CREATE TABLE model_version_tags (
  model_id INTEGER NOT NULL,
  version BIGINT NOT NULL,
  key TEXT NOT NULL,
  value TEXT,
  PRIMARY KEY (model_id, version, key)
);
