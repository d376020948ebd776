-- Auto-rollback (docs/specs/scheduler/reconciler.md, "Deploys"): a deploy
-- the scheduler creates when a deploy fails names the failed deploy, so
-- `vt deploys list` and `vt deploy` can tell a rollback from a user's deploy.
-- NULL for every deploy a user or a secrets change created.
ALTER TABLE deploys_view ADD COLUMN rollback_of text;
