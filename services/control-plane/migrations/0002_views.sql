-- Materialized views: current state derived only from events. Every column
-- comes from event data (never now()), so a rebuild from seq 0 reproduces
-- them byte for byte. See docs/specs/state/materialized-views.md.

CREATE TABLE orgs_view (
  org_id      text PRIMARY KEY,
  name        text NOT NULL,
  version     integer NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL
);

CREATE TABLE org_members_view (
  org_id      text NOT NULL,
  user_id     text NOT NULL,
  role        text NOT NULL CHECK (role IN ('owner', 'member')),
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (org_id, user_id)
);

CREATE TABLE apps_view (
  app_id      text PRIMARY KEY,
  org_id      text NOT NULL,
  name        text NOT NULL,
  description text NOT NULL DEFAULT '',
  version     integer NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL
);
CREATE INDEX apps_view_org ON apps_view (org_id, app_id);

CREATE TABLE envs_view (
  env_id      text PRIMARY KEY,
  org_id      text NOT NULL,
  app_id      text NOT NULL,
  name        text NOT NULL,
  version     integer NOT NULL,
  current_release_id text,
  current_deploy_id  text,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL
);
CREATE INDEX envs_view_app ON envs_view (app_id, env_id);

CREATE TABLE env_scale_view (
  env_id       text NOT NULL,
  process_type text NOT NULL,
  count        integer NOT NULL CHECK (count >= 0),
  updated_at   timestamptz NOT NULL,
  PRIMARY KEY (env_id, process_type)
);

CREATE TABLE releases_view (
  release_id   text PRIMARY KEY,
  org_id       text NOT NULL,
  app_id       text NOT NULL,
  image_ref    text NOT NULL,
  image_digest text NOT NULL,
  manifest     jsonb NOT NULL,
  created_at   timestamptz NOT NULL
);
CREATE INDEX releases_view_app ON releases_view (app_id, release_id);

CREATE TABLE deploys_view (
  deploy_id   text PRIMARY KEY,
  org_id      text NOT NULL,
  app_id      text NOT NULL,
  env_id      text NOT NULL,
  release_id  text NOT NULL,
  strategy    text NOT NULL,
  status      text NOT NULL,
  reason      text NOT NULL DEFAULT '',
  version     integer NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL
);
CREATE INDEX deploys_view_env ON deploys_view (env_id, deploy_id);

CREATE TABLE nodes_view (
  node_id     text PRIMARY KEY,
  hostname    text NOT NULL,
  state       text NOT NULL,
  cores       integer NOT NULL,
  memory_mb   bigint NOT NULL,
  ipv6_prefix text NOT NULL,
  labels      jsonb NOT NULL DEFAULT '{}'::jsonb,
  version     integer NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL
);

-- Desired and current state of each instance, side by side.
CREATE TABLE instances_view (
  instance_id   text PRIMARY KEY,
  org_id        text NOT NULL,
  env_id        text NOT NULL,
  process_type  text NOT NULL,
  release_id    text NOT NULL,
  deploy_id     text,
  node_id       text,
  generation    integer NOT NULL,
  desired_state text NOT NULL,
  current_state text NOT NULL,
  reason        text NOT NULL DEFAULT '',
  address       text,
  version       integer NOT NULL,
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL
);
CREATE INDEX instances_view_env ON instances_view (env_id, instance_id);
