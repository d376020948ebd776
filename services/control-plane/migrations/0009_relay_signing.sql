-- Signed relay requests (docs/specs/runtime/logs.md, "Authentication"): the
-- control plane signs each request it relays to an agent with its Ed25519
-- key, so it no longer stores any credential that opens an agent.
--
-- The relay hop speaks TLS pinned to the certificate the agent reports in
-- its heartbeat (agent_cert_sha256), and the agent_url must name the node's
-- registered underlay address, kept here (write-side, from the enrollment)
-- so a heartbeat checks it without waiting for the nodes view.
ALTER TABLE node_liveness
  DROP COLUMN relay_key,
  ADD COLUMN agent_cert_sha256 text NOT NULL DEFAULT '',
  ADD COLUMN underlay_address text NOT NULL DEFAULT '';

UPDATE node_liveness l SET underlay_address = n.underlay_address
  FROM nodes_view n WHERE n.node_id = l.node_id;

-- URLs reported before these checks are forgotten; the next heartbeat of an
-- upgraded agent reports a checked one.
UPDATE node_liveness SET agent_url = '';
