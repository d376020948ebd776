-- Per-org registry credentials (docs/specs/api/v1.md, "Registry credentials";
-- docs/security.md, "Node: image references are tenant input").
--
-- Write side only, like secret_versions: the row is the credential, the
-- events (registry_credential.set/.removed/.fetched) are its audit trail and
-- carry ids, the registry host and the version, never the username or the
-- secret. The password or token is sealed exactly like a secrets version
-- (secrets_crypto.h: a fresh data key per version, wrapped by the master
-- key); username and timestamps are plain metadata that `vt registries list`
-- shows. A removal deletes the row, so the sealed material is gone with it.
CREATE TABLE registry_credentials (
  org_id        text NOT NULL,
  registry      text NOT NULL,  -- normalized host[:port] (registry_host.h)
  credential_id text NOT NULL UNIQUE,
  version       integer NOT NULL CHECK (version >= 1),
  username      text NOT NULL,
  key_id        text NOT NULL,  -- the master key that wraps wrapped_key
  wrapped_key   text NOT NULL,  -- base64(nonce || AEAD(master key, data key))
  ciphertext    text NOT NULL,  -- base64(nonce || AEAD(data key, secret))
  created_at    timestamptz NOT NULL,
  created_by    text NOT NULL,
  updated_at    timestamptz NOT NULL,
  updated_by    text NOT NULL,
  PRIMARY KEY (org_id, registry)
);
CREATE INDEX registry_credentials_key ON registry_credentials (key_id, credential_id);
