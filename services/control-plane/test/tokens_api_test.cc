// User tokens end to end on a real server and a real PostgreSQL: create with
// an expiry, list, revoke; a revoked or expired token is refused with the
// next request (no cache of token validity), and no token or hash is ever
// stored or shown after its creation.
#include <gtest/gtest.h>

#include <chrono>

#include "api_test_support.h"
#include "auth.h"

namespace plfm::cp {
namespace {

using testsupport::ApiTest;
using testsupport::Reply;

class TokensApiTest : public ApiTest {
 protected:
  const Clock* serverClock() override { return &fake_; }

  Reply whoami(const std::string& token) { return call("GET", "/v1/whoami", "", token); }

  FakeClock fake_;
};

TEST_F(TokensApiTest, CreateListRevokeAndTheNextRequestIsRefused) {
  auto [alice_id, alice] = makeUser("alice");
  auto created =
      callJson("POST", "/v1/tokens", {{"description", "ci deploys"}, {"ttl_seconds", 3600}}, alice);
  ASSERT_EQ(created.status, 201) << created.raw;
  const std::string token = created.body["token"];
  const std::string id = created.body["id"];
  EXPECT_EQ(created.body["description"], "ci deploys");
  EXPECT_FALSE(created.body["expires_at"].is_null());
  EXPECT_EQ(whoami(token).status, 200);

  // The list shows ids and times, never a token or its hash.
  auto list = call("GET", "/v1/tokens", "", token);
  ASSERT_EQ(list.status, 200) << list.raw;
  ASSERT_EQ(list.body["items"].size(), 2U);  // the initial token and this one
  EXPECT_EQ(list.body["items"][1]["id"], id);
  EXPECT_EQ(list.body["items"][1]["current"], true);
  EXPECT_FALSE(list.body["items"][1]["first_used_at"].is_null());
  EXPECT_EQ(list.raw.find(token), std::string::npos);
  EXPECT_EQ(list.raw.find(hashToken(token)), std::string::npos);

  // Another user neither sees nor revokes it.
  auto [bob_id, bob] = makeUser("bob");
  EXPECT_EQ(call("GET", "/v1/tokens", "", bob).body["items"].size(), 1U);
  EXPECT_EQ(call("DELETE", "/v1/tokens/" + id, "", bob).status, 404);
  EXPECT_EQ(whoami(token).status, 200);

  // Revoked: the very next request is refused.
  auto revoked = call("DELETE", "/v1/tokens/" + id, "", alice);
  ASSERT_EQ(revoked.status, 200) << revoked.raw;
  const auto t0 = std::chrono::steady_clock::now();
  auto refused = whoami(token);
  EXPECT_EQ(refused.status, 401) << refused.raw;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  EXPECT_FALSE(revoked.body["revoked_at"].is_null());
  auto again = call("DELETE", "/v1/tokens/" + id, "", alice);
  EXPECT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(countEvents("token.revoked"), 1);
  EXPECT_EQ(whoami(alice).status, 200);  // the other token still works
  EXPECT_EQ(call("DELETE", "/v1/tokens/tok_01jdq3v7k2m9x4c8r6t0w5y1zb", "", alice).status, 404);

  // Neither the token nor its hash is in any event or idempotency record.
  auto conn = connect();
  auto rs = conn.exec(
      "SELECT (SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%' OR "
      "payload::text LIKE '%' || $2 || '%') + (SELECT count(*) FROM idempotency_keys WHERE "
      "response_body LIKE '%' || $1 || '%' OR response_body LIKE '%' || $2 || '%')",
      {token, hashToken(token)});
  ASSERT_TRUE(rs.has_value());
  EXPECT_EQ(*rs->int64(0, 0), 0);
}

TEST_F(TokensApiTest, ExpiredTokenIsRefusedWithTheNextRequest) {
  auto [alice_id, alice] = makeUser("alice");
  auto created = callJson("POST", "/v1/tokens", {{"ttl_seconds", 60}}, alice);
  ASSERT_EQ(created.status, 201) << created.raw;
  const std::string token = created.body["token"];
  EXPECT_EQ(whoami(token).status, 200);
  fake_.advance(std::chrono::seconds(59));
  EXPECT_EQ(whoami(token).status, 200);
  fake_.advance(std::chrono::seconds(1));
  EXPECT_EQ(whoami(token).status, 401);
  // Every user token expires; the default is 30 days.
  auto dflt = callJson("POST", "/v1/tokens", json::Json::object(), alice);
  ASSERT_EQ(dflt.status, 201) << dflt.raw;
  fake_.advance(std::chrono::hours(24 * 30));
  EXPECT_EQ(whoami(dflt.body["token"]).status, 401);
}

TEST_F(TokensApiTest, BadInputNamesTheFieldAndReplaysNeverShowTheToken) {
  auto [alice_id, alice] = makeUser("alice");
  for (const json::Json& bad :
       {json::Json{{"ttl_seconds", 59}}, json::Json{{"ttl_seconds", "1h"}},
        json::Json{{"ttl_seconds", int64_t{400} * 86'400}}, json::Json{{"description", 7}},
        json::Json{{"description", std::string(201, 'd')}}, json::Json{{"scope", "all"}}}) {
    auto r = callJson("POST", "/v1/tokens", bad, alice);
    EXPECT_EQ(r.status, 400) << bad.dump() << r.raw;
  }
  http::Headers h;
  h.set("Idempotency-Key", "tok-1");
  auto first = call("POST", "/v1/tokens", R"({"ttl_seconds":600})", alice, h);
  auto replay = call("POST", "/v1/tokens", R"({"ttl_seconds":600})", alice, h);
  ASSERT_EQ(first.status, 201) << first.raw;
  EXPECT_TRUE(first.body["token"].is_string());
  EXPECT_EQ(replay.status, 201) << replay.raw;
  EXPECT_EQ(replay.header("Idempotent-Replayed"), "true");
  EXPECT_TRUE(replay.body["token"].is_null());
  EXPECT_EQ(replay.body["token_redacted"], true);
  EXPECT_EQ(call("GET", "/v1/tokens", "", "").status, 401);
}

}  // namespace
}  // namespace plfm::cp
