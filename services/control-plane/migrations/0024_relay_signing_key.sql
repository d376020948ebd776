-- The public half of the control plane's relay signing key
-- (docs/specs/runtime/logs.md, docs/specs/control-plane/ha.md). Agents pin
-- the key of their enrollment, so every replica must sign relays with the
-- same one: the first replica to start records its public key here, and a
-- replica with another key refuses to start. The private key stays in the
-- replicas' key files and is never written here. One row.
CREATE TABLE relay_signing_key (
  id          integer PRIMARY KEY CHECK (id = 1),
  public_key  text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
