-- MLflow 3's run outputs (runs/outputs): the logged models a run produced,
-- each at a step. One row per (run, model); logging the same model again
-- keeps the first row, as run_model_inputs does.
CREATE TABLE run_model_outputs (
  run_uuid TEXT NOT NULL,
  model_id TEXT NOT NULL,
  step BIGINT NOT NULL,
  PRIMARY KEY (run_uuid, model_id)
);
-- purging a model drops the outputs that name it
CREATE INDEX run_model_outputs_model ON run_model_outputs (model_id);

-- A logged model's files lie under "<experiment_id>/models/<model_id>/artifacts/";
-- the row names the model so purging it drops exactly its references.
ALTER TABLE artifacts ADD COLUMN model_id TEXT;
CREATE INDEX artifacts_model ON artifacts (model_id);
-- files a model got before this migration: name their model too (model ids
-- are "m-" + hex, so they hold no LIKE wildcard)
UPDATE artifacts SET model_id = (SELECT m.model_id FROM logged_models m
  WHERE m.experiment_id = artifacts.experiment_id AND artifacts.path LIKE 'models/' || m.model_id || '/%')
  WHERE path LIKE 'models/%';

-- When a logged model was deleted: `kiln admin gc` purges it (and its
-- files) once that is older than the cutoff, as it does deleted runs.
ALTER TABLE logged_models ADD COLUMN deleted_time BIGINT;
