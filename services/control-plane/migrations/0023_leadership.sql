-- The control plane's leader and its fencing epoch (docs/specs/control-plane/
-- ha.md). One row. A replica that wins the leadership lock bumps `epoch` and
-- writes its id; every leader-only write first checks that `epoch` is still
-- its own (SELECT ... FOR SHARE), so a deposed leader's writes fail.
-- `settled` is the leader's scheduler settled checkpoint, for replicas that
-- do not lead. Write-side state, not a view: a rebuild keeps it.
CREATE TABLE leadership (
  id      integer PRIMARY KEY CHECK (id = 1),
  epoch   bigint NOT NULL,
  holder  text NOT NULL,
  since   timestamptz,
  settled bigint NOT NULL
);
INSERT INTO leadership (id, epoch, holder, since, settled) VALUES (1, 0, '', NULL, 0);
