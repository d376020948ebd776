-- The services feed (GET /v1/nodes/{node_id}/services, docs/specs/networking/
-- mesh.md, "Internal names"): its version is the seq of the last event that
-- changed any instance's serving state (placed, meant to run, not lost,
-- healthy, with an address), kept by the projection
-- (projections_services.cc). One row once anything served; rebuilt from the
-- log like every view. A database migrated with instances already serving
-- starts at 0 and the first change moves it; agents always take the first
-- answer.
CREATE TABLE services_feed_view (
  id      integer PRIMARY KEY CHECK (id = 1),
  version bigint NOT NULL
);
