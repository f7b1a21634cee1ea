-- Model files uploaded to the registry (POST /api/v1/models/upload and the
-- resumable sessions), what intake found in them, and the per-project
-- switch that lets unsafe pickles through.

-- One row per version made from an uploaded file. sha256/size describe the
-- file as uploaded; stored = 1 when the row holds a blob reference (READY
-- versions). A version refused by intake keeps its scan report (why it was
-- refused) but no bytes: nothing may ever load them.
CREATE TABLE model_version_files (
  model_id INTEGER NOT NULL,
  version BIGINT NOT NULL,
  project_id TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size BIGINT NOT NULL,
  stored INTEGER NOT NULL DEFAULT 0,
  format TEXT,
  framework TEXT,
  unsafe INTEGER NOT NULL DEFAULT 0,
  scan TEXT,
  signature TEXT,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (model_id, version)
);
CREATE INDEX model_version_files_sha ON model_version_files (sha256);

-- Resumable upload sessions. The bytes received so far live in a file of
-- the data directory (uploads/<id>.part), never in the blob store, so an
-- abandoned session holds no blob; received is the committed length (the
-- file is cut back to it before each chunk). Expired sessions are removed
-- with their file.
CREATE TABLE model_upload_sessions (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  name TEXT NOT NULL,
  description TEXT,
  tags TEXT,
  size BIGINT NOT NULL,
  sha256 TEXT,
  received BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX model_upload_sessions_expiry ON model_upload_sessions (expires_at);

-- Registry settings per project; a missing row means the defaults.
CREATE TABLE registry_project_settings (
  project_id TEXT PRIMARY KEY,
  allow_unsafe_pickles INTEGER NOT NULL DEFAULT 0,
  updated_at BIGINT NOT NULL,
  updated_by TEXT
);
