// A user's own API tokens: list, create with an expiry, revoke
// (`vt tokens`). A token is shown once, in the 201 that creates it; only its
// SHA-256 is stored (auth.h). Authentication reads api_tokens on every
// request, so a revoked or expired token fails with the next request.
#include <algorithm>

#include "api.h"
#include "auth.h"

namespace plfm::cp {
namespace {

constexpr int64_t kDefaultTtl = int64_t{30} * 86'400;
constexpr int64_t kMaxTtl = int64_t{366} * 86'400;
constexpr size_t kMaxDescription = 200;

// A user token as its owner sees it: never the token, never its hash.
const std::string kUserTokenColumns = "token_id AS id, description, " + ts("created_at") +
                                      " AS created_at, " + ts("expires_at") + " AS expires_at, " +
                                      ts("revoked_at") + " AS revoked_at, " + ts("first_used_at") +
                                      " AS first_used_at";

struct CreateToken {
  std::string description;
  int64_t ttl_seconds = kDefaultTtl;
};

Result<CreateToken> parseCreateToken(const http::Request& req) {
  PLFM_ASSIGN_OR_RETURN(auto body, parseBody(req, {"description", "ttl_seconds"}));
  CreateToken c;
  PLFM_ASSIGN_OR_RETURN(auto description, optionalString(body, "description"));
  c.description = description.value_or("");
  const bool printable = std::all_of(c.description.begin(), c.description.end(),
                                     [](char ch) { return ch >= 32 && ch < 127; });
  if (c.description.size() > kMaxDescription || !printable) {
    return Error(apierr::kInvalidField,
                 "field 'description' must be at most 200 printable ASCII characters")
        .with("field", "description");
  }
  if (auto it = body.find("ttl_seconds"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 60 || it->get<int64_t>() > kMaxTtl) {
      return Error(apierr::kInvalidField,
                   "field 'ttl_seconds' must be an integer 60.." + std::to_string(kMaxTtl))
          .with("field", "ttl_seconds");
    }
    c.ttl_seconds = it->get<int64_t>();
  }
  return c;
}

Error tokenNotFound(const TokenId& token) {
  return Error(plfm::errc::kNotFound, "token " + token.str() + " not found")
      .with("token_id", token.str());
}

}  // namespace

void Api::registerTokenRoutes(http::Router& r) {
  route(r, "GET", "/v1/tokens", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "tok"));
    PLFM_ASSIGN_OR_RETURN(
        auto rs, ctx.db().exec("SELECT " + kUserTokenColumns +
                                   ", token_id = $2 AS current FROM api_tokens WHERE kind = "
                                   "'user' AND subject_id = $1 AND ($3::text IS NULL OR "
                                   "token_id > $3) ORDER BY token_id LIMIT $4",
                               {ctx.who.id, ctx.who.token_id, page.cursor, page.limit}));
    return jsonResponse(200, pageJson(rs, page));
  });

  route(r, "POST", "/v1/tokens", Access::kUser, [this](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto c, parseCreateToken(ctx.req));
    return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
      const auto now = deps_.clock.now();
      const std::string token = newToken();
      const std::string id = TokenId::generate().str();
      const std::string created_at = toRfc3339(now);
      const std::string expires_at = toRfc3339(now + std::chrono::seconds(c.ttl_seconds));
      PLFM_TRY(
          tx.exec("INSERT INTO api_tokens (token_id, token_hash, kind, subject_id, description, "
                  "created_at, expires_at) VALUES ($1, $2, 'user', $3, $4, $5, $6)",
                  {id, hashToken(token), ctx.who.id, c.description, created_at, expires_at}));
      PLFM_ASSIGN_OR_RETURN(
          auto rs,
          tx.exec("SELECT " + kUserTokenColumns + " FROM api_tokens WHERE token_id = $1", {id}));
      json::Json body = rowToJson(rs, 0);
      body["token"] = token;
      return showTokenOnce(
          std::move(body),
          {events::toNewEvent(
              events::TokenCreated{.token_id = id, .kind = "user", .subject_id = ctx.who.id}, 1,
              "")});
    });
  });

  route(r, "DELETE", "/v1/tokens/{token_id}", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto token, pathId<TokenId>(ctx.req, "token_id"));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            // Only the owner's own tokens: another user's look missing.
            // Revokes once; revoking a revoked token again answers the same.
            PLFM_ASSIGN_OR_RETURN(
                auto revoked,
                tx.exec("UPDATE api_tokens SET revoked_at = $3 WHERE token_id = $1 AND kind = "
                        "'user' AND subject_id = $2 AND revoked_at IS NULL RETURNING 1",
                        {token.str(), ctx.who.id, toRfc3339(deps_.clock.now())}));
            PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT " + kUserTokenColumns +
                                                       " FROM api_tokens WHERE token_id = $1 "
                                                       "AND kind = 'user' AND subject_id = $2",
                                                   {token.str(), ctx.who.id}));
            if (rs.rows() != 1) return tokenNotFound(token);
            Mutation m;
            m.status = 200;
            m.body = rowToJson(rs, 0);
            m.body["current"] = token.str() == ctx.who.token_id;
            if (revoked.rows() == 1) {
              PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, token.str()));
              m.events = {events::toNewEvent(
                  events::TokenRevoked{
                      .token_id = token.str(), .kind = "user", .subject_id = ctx.who.id},
                  next, "")};
            }
            return m;
          });
        });
}

}  // namespace plfm::cp
