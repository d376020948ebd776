-- Volume snapshots, backups, restore and verify
-- (docs/specs/runtime/volume-mounts.md, "Contracts for snapshots, backups,
-- restore and verify", Storage): the snapshot and op rows built from the
-- volume.snapshot_* / backed_up / restore_* / verif* events, and what the
-- volume object shows of them. volumes_view.state gains 'restoring' (a
-- restore op writes the file; the agent neither makes, grows, deletes nor
-- reports it until the op is done). A node's plan version also takes the
-- max plan_seq of its snapshots and ops (node_plan.cc).
ALTER TABLE volumes_view
  ADD COLUMN last_snapshot_at   timestamptz,   -- taken_at of the newest taken snapshot
  ADD COLUMN last_backup_at     timestamptz,   -- taken_at (the consistent point) of the newest backed-up one
  ADD COLUMN last_verified_at   timestamptz,
  ADD COLUMN last_verify_ok     boolean,
  ADD COLUMN last_verify_reason text NOT NULL DEFAULT '';

CREATE TABLE volume_snapshots_view (
  snapshot_id   text PRIMARY KEY,          -- snap_...
  volume_id     text NOT NULL,
  org_id        text NOT NULL,
  env_id        text NOT NULL,
  node_id       text NOT NULL,             -- the node that takes (took) it
  origin        text NOT NULL,             -- 'api' | 'schedule'
  "freeze"      boolean NOT NULL DEFAULT true,  -- quoted: FREEZE is a reserved word
  state         text NOT NULL,             -- requested | taken | backed_up | failed
  local         boolean NOT NULL DEFAULT false,  -- the node still holds the file
  method        text,                      -- reflink | blockdev-backup | copy
  consistent    boolean,
  freeze_ms     integer,                   -- -1: no guest held the volume
  size_bytes    bigint,
  sha256        text,                      -- of the snapshot file, 64 hex
  taken_at      timestamptz,               -- the consistent point
  backup_id     text,                      -- restic snapshot id, 64 hex
  backed_up_at  timestamptz,
  backup_bytes_added bigint,
  backup_expired boolean NOT NULL DEFAULT false,  -- forgotten in the repository
  reason        text NOT NULL DEFAULT '',
  plan_seq      bigint NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL
);
CREATE INDEX volume_snapshots_view_volume ON volume_snapshots_view (volume_id, created_at);
CREATE INDEX volume_snapshots_view_node_pending ON volume_snapshots_view (node_id)
  WHERE state = 'requested';
-- The plan version (max plan_seq of a node's rows) and PlanFeed (rows with
-- plan_seq above a checkpoint) read these on every poll and checkpoint.
CREATE INDEX volume_snapshots_view_node_plan ON volume_snapshots_view (node_id, plan_seq);
CREATE INDEX volume_snapshots_view_plan_seq ON volume_snapshots_view (plan_seq);

CREATE TABLE volume_ops_view (
  op_id        text PRIMARY KEY,           -- vop_...
  kind         text NOT NULL,              -- restore | verify
  volume_id    text NOT NULL,              -- restore: the target volume; verify: the volume checked
  source_volume_id text NOT NULL,          -- restore: the snapshot's volume; verify: = volume_id
  org_id       text NOT NULL,
  env_id       text NOT NULL,
  node_id      text NOT NULL,              -- the node that runs it
  snapshot_id  text NOT NULL,
  source       text NOT NULL,              -- 'local' (the node's snapshot file) | 'backup'
  in_place     boolean NOT NULL DEFAULT false,
  origin       text NOT NULL DEFAULT 'api',-- 'api' | 'schedule' (a verify the agent ran by itself)
  state        text NOT NULL,              -- requested | done | failed
  reason       text NOT NULL DEFAULT '',
  plan_seq     bigint NOT NULL DEFAULT 0,
  created_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL
);
CREATE INDEX volume_ops_view_node_pending ON volume_ops_view (node_id) WHERE state = 'requested';
CREATE INDEX volume_ops_view_node_plan ON volume_ops_view (node_id, plan_seq);
CREATE INDEX volume_ops_view_plan_seq ON volume_ops_view (plan_seq);
