-- Per-org quotas (docs/specs/api/v1.md, "Quotas"; docs/security.md).

-- An admin's overrides of the operator's defaults (org.quotas_set). NULL:
-- the org uses the control plane's default for that limit.
CREATE TABLE org_quotas_view (
  org_id           text PRIMARY KEY,
  instances        bigint,
  memory_mb        bigint,
  releases_per_app bigint,
  routes           bigint,
  secrets_bytes    bigint,
  updated_at       timestamptz NOT NULL
);

-- ---- Write-side (not derived from events, not rebuilt) ----

-- The size of each env's current secrets (the sum of its key and value
-- bytes), written with every secrets version in the same transaction, so the
-- org's total is known without decrypting anything. Envs whose secrets
-- predate this table count 0 until their next change.
CREATE TABLE secret_bundle_sizes (
  env_id  text PRIMARY KEY,
  org_id  text NOT NULL,
  bytes   bigint NOT NULL CHECK (bytes >= 0)
);
CREATE INDEX secret_bundle_sizes_org ON secret_bundle_sizes (org_id);
