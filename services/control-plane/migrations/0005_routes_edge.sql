-- Routes (hostname + listener port -> env/process type/backend port) and the
-- edge feed (docs/specs/ingress/edge-feed.md, docs/specs/api/v1.md "Routes").

-- ---- Write-side table (not derived from events, not rebuilt) ----

-- Who holds each (listener port, normalized hostname), across every org, so
-- that two routes can never claim the same name on the same port. A tcp
-- route owns its whole port: it claims hostname '' and no other route may
-- use that port (checked under a per-port advisory lock). Written in the
-- command transaction, so concurrent creates cannot both win.
CREATE TABLE route_claims (
  listener_port integer NOT NULL,
  hostname      text NOT NULL,
  route_id      text NOT NULL UNIQUE,
  org_id        text NOT NULL,
  env_id        text NOT NULL,    -- an env with routes cannot be deleted
  protocol      text NOT NULL CHECK (protocol IN ('tls-passthrough', 'tcp')),
  PRIMARY KEY (listener_port, hostname)
);
CREATE INDEX route_claims_env ON route_claims (env_id);

-- ---- Views ----

CREATE TABLE routes_view (
  route_id       text PRIMARY KEY,
  org_id         text NOT NULL,
  app_id         text NOT NULL,
  env_id         text NOT NULL,
  hostname       text NOT NULL,   -- normalized; '' for tcp routes
  listener_port  integer NOT NULL,
  protocol       text NOT NULL,
  process_type   text NOT NULL,
  backend_port   integer NOT NULL,
  proxy_protocol text NOT NULL,
  version        integer NOT NULL,
  created_at     timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL
);
CREATE INDEX routes_view_env ON routes_view (env_id, route_id);
CREATE INDEX routes_view_target ON routes_view (env_id, process_type);

-- The edge feed's cursor: the seq of the last event that changed a route or
-- the backends of a routed (env, process type). One row once anything is
-- routed; rebuilt from the log like every view, so it rebuilds identically.
CREATE TABLE edge_feed_view (
  id     integer PRIMARY KEY CHECK (id = 1),
  cursor bigint NOT NULL
);
