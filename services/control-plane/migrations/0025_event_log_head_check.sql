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
  SELECT coalesce(max(seq), after), count(*) INTO top, n FROM events WHERE seq > after;
  IF top <> head OR n <> head - after THEN
    RAISE EXCEPTION 'the event log holds % events above seq %, up to seq %, where the batch numbered seqs % to %',
      n, after, top, after + 1, head
      USING ERRCODE = 'P0001';
  END IF;
END $$;
