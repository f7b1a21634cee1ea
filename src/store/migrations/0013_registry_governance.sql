-- Registry governance (issue 5, item 7): a project's rules for moving a
-- version to Production or onto a protected alias, the approval requests
-- those rules call for, and comments on model versions.
--
-- One settings row per project that ever changed them; no row means the
-- defaults (nothing needs approval). protected_aliases is a JSON array of
-- alias names, small and bounded by the domain code.
CREATE TABLE registry_governance (
  project_id TEXT PRIMARY KEY,
  require_approval_for_production INTEGER NOT NULL DEFAULT 0,
  protected_aliases TEXT NOT NULL DEFAULT '[]',
  updated_at BIGINT NOT NULL,
  updated_by TEXT
);

-- A request to perform one governed change (kind 'stage': move to target;
-- kind 'alias': point alias target at the version). version_seq and
-- from_stage pin the version as it was when asked: a version deleted (and
-- its number given again after the model is re-created) or moved to another
-- stage meanwhile makes the request STALE instead of approving something
-- nobody looked at. seq orders the inbox and carries its page tokens.
CREATE TABLE registry_approval_requests (
  id TEXT PRIMARY KEY,
  seq BIGINT NOT NULL UNIQUE,
  project_id TEXT NOT NULL,
  model_id INTEGER NOT NULL,
  -- the model's name when asked (shown once the model itself is gone)
  model_name TEXT NOT NULL,
  version BIGINT NOT NULL,
  version_seq BIGINT NOT NULL,
  from_stage TEXT NOT NULL,
  kind TEXT NOT NULL,
  target TEXT NOT NULL,
  archive_existing INTEGER NOT NULL DEFAULT 0,
  comment TEXT,
  requester_id TEXT NOT NULL,
  requester_name TEXT,
  state TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  decided_by TEXT,
  decided_by_name TEXT,
  decision_comment TEXT
);
CREATE INDEX registry_approval_requests_inbox ON registry_approval_requests (project_id, state, seq);
CREATE INDEX registry_approval_requests_version ON registry_approval_requests (model_id, version);

-- Comments on a model version; version_seq ties them to the version itself,
-- not just its number.
CREATE TABLE registry_version_comments (
  id TEXT PRIMARY KEY,
  seq BIGINT NOT NULL UNIQUE,
  project_id TEXT NOT NULL,
  model_id INTEGER NOT NULL,
  version BIGINT NOT NULL,
  version_seq BIGINT NOT NULL,
  author_id TEXT NOT NULL,
  author_name TEXT,
  body TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX registry_version_comments_version ON registry_version_comments (model_id, version, seq);
