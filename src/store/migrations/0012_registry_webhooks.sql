-- Registry webhooks (issue 5): per-project subscriptions to registry events,
-- and a durable delivery queue that doubles as the delivery log. Deliveries
-- are written in the same transaction as the registry change that caused
-- them (an outbox), so an acknowledged change never loses its event, and a
-- restarted server resumes every PENDING row.
CREATE TABLE registry_webhooks (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  url TEXT NOT NULL,
  -- comma-separated event names, e.g. "MODEL_VERSION_CREATED,REGISTERED_MODEL_ALIAS_SET"
  events TEXT NOT NULL,
  -- NULL: every model of the project
  model_name TEXT,
  description TEXT,
  status TEXT NOT NULL,
  -- the HMAC key: "x1:" + hex(nonce || XChaCha20-Poly1305(secret, ad = id))
  -- with a master key, else "p1:" + hex(secret)
  secret TEXT NOT NULL,
  created_by TEXT,
  creation_time BIGINT NOT NULL,
  last_updated_time BIGINT NOT NULL
);
CREATE INDEX registry_webhooks_project ON registry_webhooks (project_id, creation_time);

-- One event for one webhook. seq orders the log (newest first) and pages it.
CREATE TABLE registry_webhook_deliveries (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  webhook_id TEXT NOT NULL,
  project_id TEXT NOT NULL,
  event TEXT NOT NULL,
  payload TEXT NOT NULL,
  -- PENDING -> SUCCEEDED | FAILED (see webhooks.c)
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  next_attempt_time BIGINT NOT NULL,
  creation_time BIGINT NOT NULL,
  completed_time BIGINT,
  last_status_code INTEGER,
  last_error TEXT
);
CREATE INDEX registry_webhook_deliveries_due ON registry_webhook_deliveries (state, next_attempt_time);
CREATE INDEX registry_webhook_deliveries_hook ON registry_webhook_deliveries (webhook_id, seq);

CREATE TABLE registry_webhook_attempts (
  delivery_seq BIGINT NOT NULL,
  attempt INTEGER NOT NULL,
  start_time BIGINT NOT NULL,
  duration_ms BIGINT NOT NULL,
  status_code INTEGER,
  error TEXT,
  PRIMARY KEY (delivery_seq, attempt)
);
