-- Mesh key rotation (docs/specs/networking/mesh.md, "Contract for key
-- rotation"): when the node's current WireGuard key took effect, the key and
-- port it has staged for its second interface (null unless staged), and
-- whether a rotation was asked for (by an operator or by the key's age).
--
-- Set by node.enrolled (mesh_key_since = its time), node.mesh_key_staged
-- (the next_ columns), node.mesh_key_rotated (makes them current, clears
-- them and the request) and node.mesh_key_rotation_requested. Each of the
-- three rotation events also sets mesh_seq, so every agent's plan wakes.
ALTER TABLE nodes_view
  ADD COLUMN mesh_key_since timestamptz,
  ADD COLUMN next_wireguard_public_key text,
  ADD COLUMN next_mesh_port integer CHECK (next_mesh_port BETWEEN 1 AND 65535),
  ADD COLUMN mesh_rotation_requested boolean NOT NULL DEFAULT false;

-- Existing nodes: their key dates from their enrollment.
UPDATE nodes_view SET mesh_key_since = created_at;
ALTER TABLE nodes_view ALTER COLUMN mesh_key_since SET NOT NULL;
