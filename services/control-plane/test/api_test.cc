// The resource API end to end on a real server and database: the core
// loop, read-your-writes, pagination, idempotency, auth and tenancy.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "api_test_support.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"

namespace plfm::cp {
namespace {

using testsupport::ApiTest;
using testsupport::Reply;

TEST_F(ApiTest, BootstrapAdminTokenFileIsPrivate) {
  const auto path = state_->file("admin-token");
  const auto perms = std::filesystem::status(path).permissions();
  EXPECT_EQ(perms & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto me = call("GET", "/v1/whoami");
  ASSERT_EQ(me.status, 200) << me.raw;
  EXPECT_EQ(me.body["name"], "admin");
  EXPECT_EQ(me.body["is_admin"], true);
  // The token is in its file and nowhere in the server's log.
  log::flush();
  auto log = readFile(state_->file("control-plane.log"));
  ASSERT_TRUE(log.has_value());
  EXPECT_NE(log->find("bootstrap admin created"), std::string::npos);
  EXPECT_EQ(log->find(admin_token_), std::string::npos);
}

// Every event the API emits, of every type, validates against the envelope
// schema and its payload schema in api/schemas.
TEST_F(ApiTest, EveryEmittedEventMatchesItsSchema) {
  auto [bobId, bob] = makeUser("bob");
  const std::string org = makeOrg("schemas");
  callJson("POST", "/v1/orgs/" + org + "/members", {{"user_id", bobId}, {"role", "member"}});
  call("DELETE", "/v1/orgs/" + org + "/members/" + bobId);
  const std::string app = makeApp(org, "web");
  const std::string env = makeEnv(app, "prod");
  const std::string rel = makeRelease(app);
  callJson("POST", "/v1/envs/" + env + "/deploys",
           {{"release_id", rel}, {"strategy", "immediate"}});
  callJson("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 2}}}});
  call("DELETE", "/v1/envs/" + env);
  call("DELETE", "/v1/apps/" + app);
  call("DELETE", "/v1/orgs/" + org);
  auto conn = connect();
  auto events = EventStore::readAfter(conn, 0, 1000);
  ASSERT_TRUE(events.has_value());
  std::set<std::string> types;
  for (const auto& e : *events) {
    types.insert(e.event_type);
    auto envelope = json::parse(EventStore::envelopeJson(e));
    ASSERT_TRUE(envelope.has_value());
    auto err = testsupport::validateAgainstSchemaFile("event-envelope.json", *envelope);
    EXPECT_FALSE(err.has_value()) << e.event_type << ": " << err.value_or("");
    err = testsupport::validateAgainstSchemaFile("events/" + e.event_type + ".json",
                                                 (*envelope)["payload"]);
    EXPECT_FALSE(err.has_value()) << e.event_type << ": " << err.value_or("");
  }
  // deploy.status_changed is the scheduler's: the deploy answered once it
  // had moved the deploy to in_progress.
  EXPECT_EQ(types, (std::set<std::string>{"app.created", "app.deleted", "deploy.created",
                                          "deploy.status_changed", "env.created", "env.deleted",
                                          "env.scale_set", "org.created", "org.deleted",
                                          "org.member_added", "org.member_removed",
                                          "release.created", "token.created", "user.created"}));
}

TEST_F(ApiTest, CoreLoopWithReadYourWrites) {
  const std::string org = makeOrg("acme");
  // Every create is visible to the very next read: no sleeps anywhere.
  auto got = call("GET", "/v1/orgs/" + org);
  ASSERT_EQ(got.status, 200) << got.raw;
  EXPECT_EQ(got.body["name"], "acme");
  const std::string app = makeApp(org, "hello");
  EXPECT_EQ(call("GET", "/v1/apps/" + app).body["org_id"], org);
  const std::string env = makeEnv(app, "prod");
  const std::string rel = makeRelease(app);
  auto rg = call("GET", "/v1/releases/" + rel);
  EXPECT_EQ(rg.body["image_digest"], "sha256:" + std::string(64, 'b'));
  EXPECT_EQ(rg.body["manifest"]["app"], "hello");

  auto dep = callJson("POST", "/v1/envs/" + env + "/deploys", {{"release_id", rel}});
  ASSERT_EQ(dep.status, 201) << dep.raw;
  EXPECT_EQ(dep.body["status"], "pending");
  EXPECT_EQ(dep.body["strategy"], "rolling");
  EXPECT_NE(dep.header("X-Event-Seq"), "0");
  const std::string depId = dep.body["id"];
  EXPECT_EQ(call("GET", "/v1/deploys/" + depId).body["release_id"], rel);
  EXPECT_EQ(call("GET", "/v1/envs/" + env).body["current_deploy_id"], depId);

  auto sc = callJson("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 2}}}});
  ASSERT_EQ(sc.status, 200) << sc.raw;
  sc = callJson("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"worker", 1}}}});
  EXPECT_EQ(sc.body["processes"], json::Json({{"web", 2}, {"worker", 1}}));
  auto scale = call("GET", "/v1/envs/" + env + "/scale");
  EXPECT_EQ(scale.body["processes"], json::Json({{"web", 2}, {"worker", 1}}));

  auto inst = call("GET", "/v1/envs/" + env + "/instances");
  ASSERT_EQ(inst.status, 200) << inst.raw;
  ASSERT_EQ(inst.body["summary"].size(), 2U);
  EXPECT_EQ(inst.body["summary"][0]["process_type"], "web");
  EXPECT_EQ(inst.body["summary"][0]["desired"], 2);
  EXPECT_EQ(inst.body["summary"][0]["current"], 0);
  EXPECT_NE(inst.body["summary"][0]["reason"].get<std::string>(), "");

  // The events recorded the request ids of the calls that made them (the
  // scheduler's and the bootstrap's come from no request).
  auto conn = connect();
  auto rs = conn.exec(
      "SELECT count(*) FROM events WHERE request_id IS NULL AND actor NOT LIKE 'system:%'");
  EXPECT_EQ(*rs->int64(0, 0), 0);
}

TEST_F(ApiTest, ListsAreOrderedAndPaginated) {
  const std::string org = makeOrg("pager");
  std::vector<std::string> apps;
  for (const char* n : {"a1", "a2", "a3"}) apps.push_back(makeApp(org, n));
  auto p1 = call("GET", "/v1/orgs/" + org + "/apps?limit=2");
  ASSERT_EQ(p1.status, 200) << p1.raw;
  ASSERT_EQ(p1.body["items"].size(), 2U);
  EXPECT_EQ(p1.body["items"][0]["id"], apps[0]);
  EXPECT_EQ(p1.body["items"][1]["id"], apps[1]);
  ASSERT_TRUE(p1.body["next_cursor"].is_string());
  auto p2 = call("GET", "/v1/orgs/" + org +
                            "/apps?limit=2&cursor=" + p1.body["next_cursor"].get<std::string>());
  ASSERT_EQ(p2.body["items"].size(), 1U);
  EXPECT_EQ(p2.body["items"][0]["id"], apps[2]);
  EXPECT_TRUE(p2.body["next_cursor"].is_null());
}

TEST_F(ApiTest, NamesAreUniqueInTheirScope) {
  const std::string org = makeOrg("uniq");
  makeApp(org, "web");
  auto dup = callJson("POST", "/v1/orgs/" + org + "/apps", {{"name", "web"}});
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(dup.body["error"]["code"], "already_exists");
  EXPECT_EQ(dup.body["error"]["details"]["field"], "name");
  auto dupOrg = callJson("POST", "/v1/orgs", {{"name", "uniq"}});
  EXPECT_EQ(dupOrg.status, 409);
  // Another org may reuse the app name.
  makeApp(makeOrg("other"), "web");
}

TEST_F(ApiTest, UnknownFieldSuggestsTheIntendedOne) {
  auto r = call("POST", "/v1/orgs", R"({"nmae":"typo"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body["error"]["code"], "unknown_field");
  EXPECT_NE(r.body["error"]["message"].get<std::string>().find("did you mean 'name'?"),
            std::string::npos)
      << r.raw;
}

TEST_F(ApiTest, DeletesFreeNamesAndRespectDependents) {
  const std::string org = makeOrg("del");
  const std::string app = makeApp(org, "web");
  const std::string env = makeEnv(app, "prod");
  auto blocked = call("DELETE", "/v1/apps/" + app);
  EXPECT_EQ(blocked.status, 409);
  EXPECT_EQ(blocked.body["error"]["code"], "failed_precondition");
  EXPECT_EQ(call("DELETE", "/v1/envs/" + env).status, 200);
  EXPECT_EQ(call("GET", "/v1/envs/" + env).status, 404);
  EXPECT_EQ(call("DELETE", "/v1/apps/" + app).status, 200);
  EXPECT_EQ(call("GET", "/v1/apps/" + app).status, 404);
  makeApp(org, "web");  // the name is free again
}

TEST_F(ApiTest, OrgsAreDeletedByOwnersOnceEmpty) {
  auto [bobId, bob] = makeUser("orgbob");
  const std::string org = makeOrg("gone");
  callJson("POST", "/v1/orgs/" + org + "/members", {{"user_id", bobId}, {"role", "member"}});
  auto byMember = call("DELETE", "/v1/orgs/" + org, "", bob);
  EXPECT_EQ(byMember.status, 403);
  const std::string app = makeApp(org, "web");
  auto blocked = call("DELETE", "/v1/orgs/" + org);
  EXPECT_EQ(blocked.status, 409);
  EXPECT_EQ(blocked.body["error"]["code"], "failed_precondition");
  EXPECT_EQ(call("DELETE", "/v1/apps/" + app).status, 200);
  auto done = call("DELETE", "/v1/orgs/" + org);
  EXPECT_EQ(done.status, 200);
  EXPECT_EQ(done.body["id"], org);
  EXPECT_EQ(call("GET", "/v1/orgs/" + org).status, 404);
  EXPECT_EQ(call("GET", "/v1/orgs/" + org + "/members").status, 404);
  makeOrg("gone");  // the name is free again
}

TEST_F(ApiTest, IdempotentReplayReturnsTheSameAnswer) {
  http::Headers h;
  h.set("Idempotency-Key", "create-org-1");
  auto first = call("POST", "/v1/orgs", R"({"name":"idem"})", std::nullopt, h);
  ASSERT_EQ(first.status, 201) << first.raw;
  EXPECT_EQ(first.header("Idempotent-Replayed"), "");
  auto again = call("POST", "/v1/orgs", R"({"name":"idem"})", std::nullopt, h);
  EXPECT_EQ(again.status, 201);
  EXPECT_EQ(again.raw, first.raw);
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(again.header("X-Event-Seq"), first.header("X-Event-Seq"));
  auto other = call("POST", "/v1/orgs", R"({"name":"idem2"})", std::nullopt, h);
  EXPECT_EQ(other.status, 422);
  EXPECT_EQ(other.body["error"]["code"], "idempotency_key_reused");
  EXPECT_EQ(countEvents("org.created"), 1);
}

TEST_F(ApiTest, FiftyConcurrentIdenticalRequestsAppendOnce) {
  constexpr int kClients = 50;
  std::vector<Reply> replies(kClients);
  std::vector<std::thread> threads;
  threads.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      http::Headers h;
      h.set("Idempotency-Key", "same-key-for-all");
      replies[i] = call("POST", "/v1/orgs", R"({"name":"stampede"})", std::nullopt, h);
    });
  }
  for (auto& t : threads) t.join();
  int fresh = 0;
  for (const auto& r : replies) {
    ASSERT_EQ(r.status, 201) << r.raw;
    EXPECT_EQ(r.raw, replies[0].raw);
    if (r.header("Idempotent-Replayed").empty()) ++fresh;
  }
  EXPECT_EQ(fresh, 1);
  EXPECT_EQ(countEvents("org.created"), 1);
  EXPECT_EQ(countEvents("org.member_added"), 1);
}

TEST_F(ApiTest, CreatedUserTokenIsShownOnceAndNeverStored) {
  http::Headers h;
  h.set("Idempotency-Key", "user-bob");
  auto r = call("POST", "/v1/users", R"({"name":"bob"})", std::nullopt, h);
  ASSERT_EQ(r.status, 201) << r.raw;
  const std::string token = r.body["token"];
  ASSERT_EQ(token.substr(0, 3), "vt_");
  auto replay = call("POST", "/v1/users", R"({"name":"bob"})", std::nullopt, h);
  EXPECT_TRUE(replay.body["token"].is_null());
  EXPECT_EQ(replay.body["token_redacted"], true);
  EXPECT_EQ(call("GET", "/v1/whoami", "", token).body["name"], "bob");
  // Neither the token nor its hash is in any event or idempotency record.
  auto conn = connect();
  auto rs = conn.exec(
      "SELECT (SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 "
      "|| '%' OR payload::text LIKE '%' || $2 || '%') + (SELECT count(*) FROM "
      "idempotency_keys WHERE response_body LIKE '%' || $1 || '%')",
      {token, hashToken(token)});
  ASSERT_TRUE(rs.has_value());
  EXPECT_EQ(*rs->int64(0, 0), 0);
}

TEST_F(ApiTest, TokensAreCheckedAndOrgsAreIsolated) {
  EXPECT_EQ(call("GET", "/v1/orgs", "", "").status, 401);
  EXPECT_EQ(call("GET", "/v1/orgs", "", "vt_" + std::string(52, 'a')).status, 401);
  EXPECT_EQ(call("GET", "/v1/orgs", "", "garbage").status, 401);
  auto [aliceId, alice] = makeUser("alice");
  auto [bobId, bob] = makeUser("bob");
  const std::string org = makeOrg("alice-co", alice);
  auto appR = callJson("POST", "/v1/orgs/" + org + "/apps", {{"name", "web"}}, alice);
  ASSERT_EQ(appR.status, 201) << appR.raw;
  const std::string app = appR.body["id"];
  // Bob sees nothing of it: 404, exactly like a missing resource.
  EXPECT_EQ(call("GET", "/v1/orgs/" + org, "", bob).status, 404);
  EXPECT_EQ(call("GET", "/v1/apps/" + app, "", bob).status, 404);
  EXPECT_EQ(call("GET", "/v1/orgs/" + org + "/events", "", bob).status, 404);
  EXPECT_EQ(callJson("POST", "/v1/apps/" + app + "/envs", {{"name", "x"}}, bob).status, 404);
  EXPECT_EQ(call("GET", "/v1/orgs", "", bob).body["items"].size(), 0U);
  // Non-admins cannot create users or read nodes.
  EXPECT_EQ(callJson("POST", "/v1/users", {{"name", "eve"}}, bob).status, 403);
  EXPECT_EQ(call("GET", "/v1/nodes", "", bob).status, 403);
  // Alice adds Bob as a member: he can read, but not manage members.
  auto add = callJson("POST", "/v1/orgs/" + org + "/members",
                      {{"user_id", bobId}, {"role", "member"}}, alice);
  ASSERT_EQ(add.status, 201) << add.raw;
  EXPECT_EQ(call("GET", "/v1/apps/" + app, "", bob).status, 200);
  auto denied = callJson("POST", "/v1/orgs/" + org + "/members",
                         {{"user_id", bobId}, {"role", "owner"}}, bob);
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(call("GET", "/v1/orgs/" + org + "/members", "", bob).body["items"].size(), 2U);
  // The last owner cannot leave; a member can be removed.
  auto last = call("DELETE", "/v1/orgs/" + org + "/members/" + aliceId, "", alice);
  EXPECT_EQ(last.status, 409);
  EXPECT_EQ(call("DELETE", "/v1/orgs/" + org + "/members/" + bobId, "", alice).status, 200);
  EXPECT_EQ(call("GET", "/v1/apps/" + app, "", bob).status, 404);
  // Routes that name the org read the role with the token: gone as well.
  EXPECT_EQ(call("GET", "/v1/orgs/" + org + "/apps", "", bob).status, 404);
  EXPECT_EQ(callJson("POST", "/v1/orgs/" + org + "/apps", {{"name", "late"}}, bob).status, 404);
  EXPECT_EQ(call("GET", "/v1/orgs/" + org + "/apps", "", alice).status, 200);
}

TEST_F(ApiTest, RequestIdsAreAssignedOrKept) {
  auto a = call("GET", "/v1/whoami");
  EXPECT_EQ(a.header("X-Request-Id").substr(0, 4), "req_");
  const std::string mine = RequestId::generate().str();
  http::Headers h;
  h.set("X-Request-Id", mine);
  EXPECT_EQ(call("GET", "/v1/whoami", "", std::nullopt, h).header("X-Request-Id"), mine);
  h.set("X-Request-Id", "not-an-id");
  EXPECT_NE(call("GET", "/v1/whoami", "", std::nullopt, h).header("X-Request-Id"), "not-an-id");
  auto missing = call("GET", "/v1/no-such-route");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body["error"]["request_id"], missing.header("X-Request-Id"));
}

TEST_F(ApiTest, HealthAndMetrics) {
  auto h = call("GET", "/healthz", "", "");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body["status"], "ok");
  makeOrg("metered");
  auto m = call("GET", "/metrics", "", "");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.raw.find("plfm_http_requests_total{method=\"POST\",route=\"/v1/orgs\","
                       "status=\"201\"} 1"),
            std::string::npos)
      << m.raw;
  EXPECT_NE(m.raw.find("plfm_projection_checkpoint"), std::string::npos);
}

}  // namespace
}  // namespace plfm::cp
