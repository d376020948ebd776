-- The drain gate (docs/specs/scheduler/drain.md): an instance that leaves
-- service keeps running until every ingress has stopped sending it new
-- connections and its open ones have closed (or the drain timeout).
--
-- instances_view: when the drain was asked for (the seq and time of its
-- instance.drain_requested event) and whether the gate let it go
-- (instance.drain_released). Until then the node plan still says "run".
ALTER TABLE instances_view
  ADD COLUMN drain_seq          bigint NOT NULL DEFAULT 0,
  ADD COLUMN drain_requested_at timestamptz,
  ADD COLUMN drain_released     boolean NOT NULL DEFAULT false;
CREATE INDEX instances_view_gated_drains ON instances_view (instance_id)
  WHERE desired_state = 'drain' AND NOT drain_released;

-- What each ingress last reported (PUT /v1/edge/status): the edge-feed
-- cursor it serves, and the open connections of the backends it was told
-- are draining. Observed state like node_liveness, not derived from events;
-- one row per edge token name, overwritten by each report.
CREATE TABLE edge_reports (
  name        text PRIMARY KEY,
  cursor      bigint NOT NULL,
  draining    jsonb NOT NULL,   -- [{"address": "fd00::5", "port": 8443, "active": 2}]
  reported_at timestamptz NOT NULL
);
