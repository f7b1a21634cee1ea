-- Artifacts served by the mlflow-artifacts proxy. A path is what follows
-- mlflow-artifacts:/ — "<experiment_id>/<rest>" — and a run's files lie under
-- "<experiment_id>/<run_id>/artifacts/". One row per file; its bytes are a
-- blob, and the row holds one reference on it (blobs.refcount), so identical
-- files are stored once and deleting the last row lets the GC reclaim them.
CREATE TABLE artifacts (
  experiment_id INTEGER NOT NULL,
  path TEXT NOT NULL,   -- <rest>: relative to the experiment's root, no leading '/'
  run_uuid TEXT,        -- the run the path lies under (first segment), NULL if none
  sha256 TEXT NOT NULL,
  size BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (experiment_id, path)
);
-- permanently deleting a run drops its files' references
CREATE INDEX artifacts_run ON artifacts (run_uuid);

-- Multipart uploads in progress (mpu/create .. complete|abort). The upload id
-- is a 256-bit secret: the part URLs it makes are the presigned URLs MLflow's
-- client PUTs to without credentials. Each part is a blob referenced by its
-- row until the upload completes or is aborted.
CREATE TABLE artifact_uploads (
  upload_id TEXT PRIMARY KEY,
  experiment_id INTEGER NOT NULL,
  path TEXT NOT NULL,
  num_parts BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE artifact_upload_parts (
  upload_id TEXT NOT NULL,
  part_number BIGINT NOT NULL,
  sha256 TEXT NOT NULL,
  size BIGINT NOT NULL,
  PRIMARY KEY (upload_id, part_number)
);
