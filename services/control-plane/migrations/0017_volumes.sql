-- Volumes (docs/specs/runtime/volume-mounts.md, "Contracts between the
-- parts", Storage): one row per volume, built from the volume.* events.
-- State: pending (no node) -> placed (node chosen, the agent has not
-- reported) -> ready (the agent has the file at reported_size_bytes);
-- deleting -> deleted; failed (the agent could not create it; reason).
-- plan_seq is the seq of the last event that changed a node plan; a node's
-- plan version also takes the max over its volumes.
CREATE TABLE volumes_view (
  volume_id    text PRIMARY KEY,           -- vol_...
  org_id       text NOT NULL,
  app_id       text NOT NULL,
  env_id       text NOT NULL,
  process_type text NOT NULL,
  name         text NOT NULL,              -- manifest name: "uploads"
  slot         integer NOT NULL,           -- 0 ..
  full_name    text NOT NULL,              -- "uploads-0"
  size_bytes   bigint NOT NULL,            -- desired size (create, extend)
  node_id      text,                       -- NULL while pending
  state        text NOT NULL,              -- pending|placed|ready|deleting|deleted|failed
  reason       text NOT NULL DEFAULT '',   -- for failed (the agent's words)
  reported_size_bytes bigint,              -- the size the agent last reported
  plan_seq     bigint NOT NULL DEFAULT 0,  -- seq of the last event that changes a node plan
  version      integer NOT NULL,
  created_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL
);
CREATE UNIQUE INDEX volumes_view_live_name ON volumes_view (env_id, full_name)
  WHERE state <> 'deleted';
CREATE INDEX volumes_view_node ON volumes_view (node_id) WHERE state <> 'deleted';
ALTER TABLE node_liveness ADD COLUMN volume_capacity_bytes bigint;  -- from heartbeats
