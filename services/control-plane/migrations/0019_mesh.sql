-- The mesh (docs/specs/networking/mesh.md, "Contracts for increments 1 to
-- 3"): each org's network tag, and the node facts the NodePlan's mesh
-- section needs.
--
-- org_net_tags is write-side state: a tag is allocated when the org is
-- created (in that transaction; the scheduler inserts a missing one), never
-- changes and is never reused, so it outlives a rebuild of the views. It
-- sits in bits 64..95 of every new instance address, so the org of any
-- address is `address & ::ffff:ffff:0:0`.
CREATE SEQUENCE org_net_tag_seq AS bigint MINVALUE 1 MAXVALUE 4294967294 NO CYCLE;

CREATE TABLE org_net_tags (
  org_id   text PRIMARY KEY,
  net_tag  bigint NOT NULL UNIQUE DEFAULT nextval('org_net_tag_seq')
           CHECK (net_tag BETWEEN 1 AND 4294967294)
);

-- Every org that exists or ever existed, in creation order.
INSERT INTO org_net_tags (org_id, net_tag)
  SELECT org_id, nextval('org_net_tag_seq')
  FROM (SELECT aggregate_id AS org_id, min(seq) AS first FROM events
        WHERE event_type = 'org.created' GROUP BY aggregate_id ORDER BY first) o
  ORDER BY first;

-- mesh_port and role come from node.enrolled (absent in older events:
-- 51820 and worker). mesh_seq is the seq of the last event that changed the
-- node's mesh membership or attributes (node.enrolled, node.state_changed
-- into or out of down, node.removed); the mesh version of every plan is
-- max(mesh_seq) over all nodes.
ALTER TABLE nodes_view
  ADD COLUMN mesh_port integer NOT NULL DEFAULT 51820 CHECK (mesh_port BETWEEN 1 AND 65535),
  ADD COLUMN role      text NOT NULL DEFAULT 'worker' CHECK (role IN ('worker', 'edge')),
  ADD COLUMN mesh_seq  bigint NOT NULL DEFAULT 0;

UPDATE nodes_view n SET mesh_seq = coalesce((
  SELECT max(e.seq) FROM events e WHERE e.aggregate_id = n.node_id AND (
    e.event_type IN ('node.enrolled', 'node.removed') OR
    (e.event_type = 'node.state_changed' AND
     (e.payload->>'from' = 'down' OR e.payload->>'to' = 'down')))), 0);

CREATE INDEX nodes_view_mesh_seq ON nodes_view (mesh_seq);
