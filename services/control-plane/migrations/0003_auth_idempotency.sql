-- Write-side tables: state that commands need but that is not derived from
-- events (credentials, idempotency records, uniqueness reservations).

-- Users and bearer tokens. Only a SHA-256 of each token is stored: tokens
-- are 256-bit random values, so the hash cannot be reversed or guessed.
CREATE TABLE users (
  user_id     text PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  is_admin    boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
  token_id    text PRIMARY KEY,
  token_hash  text NOT NULL UNIQUE,
  kind        text NOT NULL CHECK (kind IN ('user', 'node', 'edge')),
  subject_id  text NOT NULL,           -- user_id, node_id or edge name
  description text NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz,
  revoked_at  timestamptz
);

-- Idempotency records, written in the same transaction as the command's
-- events, with the final response. See docs/specs/api/idempotency.md.
CREATE TABLE idempotency_keys (
  scope         text NOT NULL,          -- the caller: user or node id
  key           text NOT NULL,
  request_hash  text NOT NULL,          -- sha256 of method, path and body
  status        integer NOT NULL,
  response_body text NOT NULL,
  seq           bigint NOT NULL,        -- last event seq the command appended (0: none)
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Command-side uniqueness: names that must be unique within a parent
-- (org names globally, app names in an org, env names in an app). Checked
-- in the command transaction, so concurrent creates cannot both win.
CREATE TABLE name_reservations (
  scope      text NOT NULL,   -- 'org', 'app:<org_id>', 'env:<app_id>'
  name       text NOT NULL,
  owner_id   text NOT NULL,
  PRIMARY KEY (scope, name)
);
