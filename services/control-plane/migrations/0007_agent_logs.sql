-- The log relay (docs/specs/runtime/logs.md): where each node agent's
-- listener is and the bearer the control plane presents there. Heartbeats
-- write these (no event: a heartbeat stays one row update); they are
-- write-side state, never in a view or an event, and the API never shows
-- relay_key.
ALTER TABLE node_liveness
  ADD COLUMN agent_url text NOT NULL DEFAULT '',
  ADD COLUMN relay_key text NOT NULL DEFAULT '';
