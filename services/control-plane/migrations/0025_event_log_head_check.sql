-- The group committer numbers the appends of its pipelined commands itself,
-- counting from the head it read under the append lock, and sends them
-- without waiting for their results (docs/specs/state/event-log.md, "Group
-- commit"). In its COMMIT's round trip, before the COMMIT, it checks that
-- the log holds exactly the seqs it handed out: after + 1 to head, no gap
-- and nothing above. When it does not, the whole batch rolls back.
CREATE FUNCTION events_expect_head(after bigint, head bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  top bigint;
  n bigint;
BEGIN
  -- Both bounded, so that even the cached generic plan (which does not know
  -- that `after` is near the top) reads the primary key, not the table.
  SELECT count(*) INTO n FROM events WHERE seq > after AND seq <= head;
  SELECT coalesce(max(seq), 0) INTO top FROM events;
  IF top <> head OR n <> head - after THEN
    RAISE EXCEPTION 'the batch numbered seqs % to %, but the event log holds % of them and ends at seq %',
      after + 1, head, n, top
      USING ERRCODE = 'P0001';
  END IF;
END $$;
