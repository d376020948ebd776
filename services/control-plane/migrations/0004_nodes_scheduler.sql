-- Nodes, the scheduler and the NodePlan feed (docs/specs/scheduler/,
-- docs/specs/state/materialized-views.md).

-- ---- Write-side tables (not derived from events, not rebuilt) ----

-- One-time enrollment tokens. Only the SHA-256 of the token is stored. A
-- token is redeemed once (used_at, node_id); presenting it again with the
-- same hostname before it expires re-issues the node's credential (a retry
-- after a lost response) instead of enrolling a second node.
CREATE TABLE node_enrollments (
  enrollment_id text PRIMARY KEY,
  token_hash    text NOT NULL UNIQUE,
  created_by    text NOT NULL,
  created_at    timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL,
  used_at       timestamptz,
  node_id       text,
  hostname      text
);

-- Node liveness: one row per node, updated by every heartbeat. Heartbeats
-- are not events; only the state transitions they cause are
-- (node.state_changed), decided here under the row lock so that each is
-- recorded once.
CREATE TABLE node_liveness (
  node_id           text PRIMARY KEY,
  last_heartbeat_at timestamptz NOT NULL,
  agent_version     text NOT NULL DEFAULT '',
  state             text NOT NULL DEFAULT 'active'
                    CHECK (state IN ('active', 'unreachable', 'down')),
  state_since       timestamptz NOT NULL
);
CREATE INDEX node_liveness_heartbeat ON node_liveness (state, last_heartbeat_at);

-- IPv6 /64 allocation from the cluster prefix, one per node, taken in the
-- enrollment transaction so two nodes never share a prefix.
CREATE TABLE node_prefixes (
  prefix  text PRIMARY KEY,
  node_id text NOT NULL UNIQUE
);

-- The newest status report accepted per instance: reports are idempotent
-- by (instance, generation, seq); anything not above this pair is a stale
-- or duplicate report and changes nothing.
CREATE TABLE instance_reports (
  instance_id text PRIMARY KEY,
  generation  bigint NOT NULL,
  seq         bigint NOT NULL
);

-- The scheduler's latest reason per (env, process type) why desired and
-- current differ (reconcile's Pending), for GET /v1/envs/{env_id}/instances.
-- Rewritten by the scheduler only when it changes; a status, not history.
CREATE TABLE scheduler_status (
  env_id       text NOT NULL,
  process_type text NOT NULL,
  missing      integer NOT NULL,
  outdated     integer NOT NULL,
  reason       text NOT NULL,
  updated_at   timestamptz NOT NULL,
  PRIMARY KEY (env_id, process_type)
);

-- ---- View columns ----

ALTER TABLE nodes_view
  ADD COLUMN disk_mb              bigint NOT NULL DEFAULT 0,
  ADD COLUMN wireguard_public_key text NOT NULL DEFAULT '',
  ADD COLUMN underlay_address     text NOT NULL DEFAULT '',
  ADD COLUMN runtimes             jsonb NOT NULL DEFAULT '[]'::jsonb,
  ADD COLUMN cordoned             boolean NOT NULL DEFAULT false,
  ADD COLUMN draining             boolean NOT NULL DEFAULT false,
  ADD COLUMN state_reason         text NOT NULL DEFAULT '',
  ADD COLUMN state_since          timestamptz,
  -- The seq of the node's own last plan-relevant event (node.enrolled). A
  -- node's plan version is the greater of this and its instances' plan_seq.
  ADD COLUMN plan_version         bigint NOT NULL DEFAULT 0;
CREATE INDEX nodes_view_plan_version ON nodes_view (plan_version);

ALTER TABLE instances_view
  ADD COLUMN app_id         text NOT NULL DEFAULT '',
  ADD COLUMN vcpus          integer NOT NULL DEFAULT 1,
  ADD COLUMN memory_mb      integer NOT NULL DEFAULT 256,
  ADD COLUMN lost           boolean NOT NULL DEFAULT false,
  ADD COLUMN restarts       integer NOT NULL DEFAULT 0,
  ADD COLUMN not_before     timestamptz,
  ADD COLUMN exit_code      integer,
  ADD COLUMN status_seq     bigint NOT NULL DEFAULT 0,
  ADD COLUMN phase_since    timestamptz,
  ADD COLUMN timings        jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- The seq of the last event that changed what the instance's node must do
  -- about it (allocated, restart, drain, stop, reported stopped). Plan
  -- versions are built from it, so they increase whenever a plan changes
  -- and rebuild identically (they come from the log).
  ADD COLUMN plan_seq       bigint NOT NULL DEFAULT 0;
CREATE INDEX instances_view_node ON instances_view (node_id, plan_seq);
CREATE INDEX instances_view_plan_seq ON instances_view (plan_seq);
