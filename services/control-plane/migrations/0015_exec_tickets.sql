-- Exec tickets (docs/specs/runtime/exec-sessions.md, "Control plane"):
-- POST /v1/instances/{instance_id}/exec stores one row per ticket, GET
-- /v1/exec consumes it (DELETE ... RETURNING) before it upgrades to the
-- session's WebSocket. Only the ticket's SHA-256 is stored: the ticket
-- itself is shown once. `request` holds the parsed command (argv included),
-- which can carry secrets: it lives only here, for at most the ticket's
-- 60 s, and is deleted when the ticket is used or swept when it expires
-- (every new ticket sweeps the expired ones). Write-side state, not derived
-- from events: the audit trail is exec.started / exec.ended.
CREATE TABLE exec_tickets (
  ticket_hash text PRIMARY KEY,
  session_id  text NOT NULL UNIQUE,
  org_id      text NOT NULL,
  instance_id text NOT NULL,
  actor       text NOT NULL,
  request     jsonb NOT NULL,
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL
);
CREATE INDEX exec_tickets_expiry ON exec_tickets (expires_at);
