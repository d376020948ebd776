-- The append-only event log. See docs/specs/state/event-log.md.
--
-- seq is assigned by the appender under a transaction-scoped advisory lock,
-- so it is gapless and strictly increasing in commit order: no bigserial.
CREATE TABLE events (
  seq            bigint      PRIMARY KEY CHECK (seq > 0),
  event_id       text        NOT NULL UNIQUE,
  occurred_at    timestamptz NOT NULL,
  aggregate_type text        NOT NULL,
  aggregate_id   text        NOT NULL,
  aggregate_seq  integer     NOT NULL CHECK (aggregate_seq > 0),
  event_type     text        NOT NULL,
  event_version  integer     NOT NULL DEFAULT 1,
  org_id         text,
  actor          text        NOT NULL,
  request_id     text,
  correlation    jsonb       NOT NULL DEFAULT '{}'::jsonb,
  payload        jsonb       NOT NULL,
  CONSTRAINT events_aggregate_seq_unique UNIQUE (aggregate_id, aggregate_seq)
);

CREATE INDEX events_org_seq ON events (org_id, seq);

-- Append-only: no UPDATE, DELETE or TRUNCATE ever touches the log.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'events is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'P0001';
END $$;

CREATE TRIGGER events_no_update_delete
  BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION events_append_only();

CREATE TRIGGER events_no_truncate
  BEFORE TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

-- Projection checkpoints: the last seq each projection applied. Advanced in
-- the same transaction as the view changes it covers.
CREATE TABLE projection_checkpoints (
  name       text   PRIMARY KEY,
  last_seq   bigint NOT NULL DEFAULT 0
);
INSERT INTO projection_checkpoints (name, last_seq) VALUES ('views', 0);
