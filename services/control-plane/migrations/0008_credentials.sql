-- Credentials (docs/security.md, "Control plane: credentials").
-- first_used_at: when a token first authenticated a request. An enrollment
-- retry may re-issue a node credential only while the first one was never
-- used (nodes.cc). Set once, so authentication stays a read afterwards.
ALTER TABLE api_tokens ADD COLUMN first_used_at timestamptz;
-- A user's tokens, listed by `vt tokens list`.
CREATE INDEX api_tokens_subject ON api_tokens (kind, subject_id, token_id);
-- `vt nodes rm` (node.removed): the node stays in the view, down, for the
-- scheduler to replace its instances; lists and gets leave it out.
ALTER TABLE nodes_view ADD COLUMN removed_at timestamptz;
