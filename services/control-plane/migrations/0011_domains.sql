-- Domains an org proves it controls (docs/specs/ingress/domains.md).
--
-- Write-side table, like route_claims and api_tokens: written in the command
-- transaction, not derived from events (domain.created, domain.verified and
-- domain.deleted are audit events). A verified domain is what route claims
-- are checked against: only its org may route names under it, and a wildcard
-- route of a non-admin needs one. Verifications and route claims are
-- serialized by an advisory lock (api_domains.cc, domains.cc), so at most one
-- org holds a verified domain among names that contain each other.
CREATE TABLE domains (
  domain_id   text PRIMARY KEY,
  org_id      text NOT NULL,
  domain      text NOT NULL,         -- normalized, no wildcard, not a public suffix
  challenge   text NOT NULL,         -- the TXT value the org must publish
  created_at  timestamptz NOT NULL,
  verified_at timestamptz,           -- NULL while pending
  UNIQUE (org_id, domain)
);
CREATE INDEX domains_verified ON domains (domain) WHERE verified_at IS NOT NULL;
