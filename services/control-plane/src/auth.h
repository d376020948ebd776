// Bearer-token authentication and org roles.
//
// Tokens are "vt_" + 52 base32 characters (256 random bits). Only their
// SHA-256 is stored (api_tokens.token_hash): with 256 bits of entropy the
// hash cannot be reversed or guessed. A token authenticates a user, a node
// or the edge (kind). Users are members of orgs with a role.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "event_store.h"
#include "plfm/core/clock.h"
#include "plfm/core/id.h"
#include "plfm/core/result.h"
#include "plfm/pg/pg.h"

namespace plfm::cp {

struct Principal {
  std::string kind;  // "user", "node", "edge"
  std::string id;    // usr_..., node_..., or the edge's name
  std::string name;
  bool is_admin = false;
  std::string token_id;
  // The user's role in `role_org`, read with the credential when the route
  // names an org (authenticate's `org_id`), so roleIn() needs no query of
  // its own: nullopt when not a member. Empty `role_org`: not read.
  std::string role_org;
  std::optional<std::string> role;
};

// A fresh random token. It is shown once and never stored.
[[nodiscard]] std::string newToken();
[[nodiscard]] std::string hashToken(std::string_view token);

// Resolves an Authorization header to a principal. Every failure is the
// same unauthenticated error, so callers learn nothing about which part
// was wrong. Nothing is cached: revocation and expiry (on `clock`) take
// effect with the next request. A token's first use is recorded
// (api_tokens.first_used_at).
// `org_id` (optional): the org the route names; a user's role in it is read
// in the same statement (Principal::role).
[[nodiscard]] Result<Principal> authenticate(pg::Connection& conn, const Clock& clock,
                                             std::optional<std::string_view> authorization,
                                             std::string_view org_id = {});

// Checks the bearer token of an enrollment request (POST /v1/nodes/enroll)
// against the unexpired enrollment tokens; returns the token. Every failure
// is the same unauthenticated error.
[[nodiscard]] Result<std::string> authenticateEnrollment(
    pg::Connection& conn, const Clock& clock, std::optional<std::string_view> authorization);

// Whether `who`'s token still authenticates (not revoked, not expired): for
// long-polls, which check again after each wait. unauthenticated otherwise.
[[nodiscard]] Result<void> recheck(pg::Connection& conn, const Clock& clock, const Principal& who);

// The caller's role in `org_id` ("owner" or "member"), or not_found when the
// org does not exist or the caller is not a member (indistinguishable). The
// role read with the credential (Principal::role) answers it when it is for
// the same org.
[[nodiscard]] Result<std::string> roleIn(pg::Connection& conn, const Principal& who,
                                         std::string_view org_id);

struct NewUser {
  std::string user_id;
  std::string name;
  bool is_admin = false;
  std::string created_at;
  std::string token;  // plaintext, for the caller to show once
  std::string token_id;
  // The user's role in `role_org`, read with the credential when the route
  // names an org (authenticate's `org_id`), so roleIn() needs no query of
  // its own: nullopt when not a member. Empty `role_org`: not read.
  std::string role_org;
  std::optional<std::string> role;
};

// Inserts a user and its first token, and returns the events that record
// them (user.created, token.created; neither carries the token or its hash).
[[nodiscard]] Result<std::pair<NewUser, std::vector<NewEvent>>> createUser(pg::Transaction& tx,
                                                                           const Clock& clock,
                                                                           std::string_view name,
                                                                           bool is_admin);

// On first start (no users yet) creates the admin user and writes its token
// to `token_file` with mode 0600. Returns true when it created one. The token
// never reaches the logs.
[[nodiscard]] Result<bool> bootstrapAdmin(pg::Connection& conn, EventStore& store,
                                          const Clock& clock, const std::string& token_file);

}  // namespace plfm::cp
