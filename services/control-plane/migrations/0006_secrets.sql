-- Secret bundles (docs/specs/secrets/bundles.md, docs/specs/secrets/encryption.md).

-- ---- Write-side tables (not derived from events, not rebuilt) ----

-- One row per env that has secrets: the head version, locked (FOR UPDATE)
-- by every change so versions of one env are numbered 1, 2, 3... without gaps.
CREATE TABLE secret_bundles (
  env_id          text PRIMARY KEY,
  org_id          text NOT NULL,
  head_version_id text NOT NULL,
  head_number     integer NOT NULL
);

-- The encrypted material, one immutable row per version: the only table that
-- holds secret values, sealed (docs/specs/secrets/encryption.md). Only
-- `plfm-control-plane secrets rotate-master-key` updates it, and only
-- key_id and wrapped_key. No events, no view and no log carries these columns.
CREATE TABLE secret_versions (
  version_id  text PRIMARY KEY,
  env_id      text NOT NULL,
  org_id      text NOT NULL,
  number      integer NOT NULL CHECK (number >= 1),
  key_id      text NOT NULL,  -- the master key that wraps wrapped_key
  wrapped_key text NOT NULL,  -- base64(nonce || AEAD(master key, data key))
  ciphertext  text NOT NULL,  -- base64(nonce || AEAD(data key, secrets file))
  created_at  timestamptz NOT NULL,
  created_by  text NOT NULL,
  UNIQUE (env_id, number)
);
CREATE INDEX secret_versions_key ON secret_versions (key_id, version_id);

-- ---- Views (from secrets.version_created) ----

CREATE TABLE secret_versions_view (
  version_id   text PRIMARY KEY,
  org_id       text NOT NULL,
  env_id       text NOT NULL,
  number       integer NOT NULL,
  operation    text NOT NULL CHECK (operation IN ('set', 'unset', 'import')),
  keys         jsonb NOT NULL,  -- every key name of the version, sorted
  set_keys     jsonb NOT NULL,  -- names the change set
  unset_keys   jsonb NOT NULL,  -- names the change removed
  deploy_id    text,            -- the deploy the change started, if any
  created_at   timestamptz NOT NULL,
  created_by   text NOT NULL
);
CREATE INDEX secret_versions_view_env ON secret_versions_view (env_id, number);

-- The current keys of each env: where each was last set.
CREATE TABLE secret_keys_view (
  env_id      text NOT NULL,
  key         text NOT NULL,
  version_id  text NOT NULL,
  number      integer NOT NULL,
  updated_at  timestamptz NOT NULL,
  updated_by  text NOT NULL,
  PRIMARY KEY (env_id, key)
);

-- The secrets version a deploy pins, and the one each instance runs with
-- (null: the env had no secrets).
ALTER TABLE deploys_view ADD COLUMN secrets_version text;
ALTER TABLE instances_view ADD COLUMN secrets_version text;
