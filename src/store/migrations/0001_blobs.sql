-- Blob bookkeeping: one row per stored object, keyed by the SHA-256 of its
-- plaintext. refcount counts rows elsewhere that point at the blob; the GC
-- removes refcount-0 blobs whose last put is older than its grace period.
CREATE TABLE blobs (
  sha256 TEXT PRIMARY KEY,
  size BIGINT NOT NULL,
  stored_size BIGINT NOT NULL,
  codec TEXT NOT NULL,
  encrypted INTEGER NOT NULL DEFAULT 0,
  refcount BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  last_put_at BIGINT NOT NULL
);
CREATE INDEX blobs_gc ON blobs (refcount, last_put_at);
