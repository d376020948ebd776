-- The mesh figures of each node's last heartbeat (docs/specs/networking/
-- mesh.md, "Operator view and the bench"): {peers, peers_up,
-- latest_handshake_at, rx_bytes, tx_bytes}, checked by the heartbeat route
-- and rebuilt from the checked values; NULL when the last heartbeat carried
-- none (an agent without a mesh interface, or one from before). Liveness
-- data like last_heartbeat_at: written by every heartbeat, no event.
ALTER TABLE node_liveness ADD COLUMN mesh jsonb
  CHECK (mesh IS NULL OR jsonb_typeof(mesh) = 'object');
