// Quotas and roles end to end on a real server and PostgreSQL (issue 15):
// each quota at its limit passes and one over it is refused with
// quota_exceeded naming the limit, the use and the request; concurrent
// scale-ups cannot both pass; admins override limits through the event log;
// members deploy but cannot delete apps or envs nor change members; and the
// last owner survives concurrent removals and demotions.
#include <gtest/gtest.h>

#include <functional>
#include <future>

#include "secrets_test_support.h"

namespace plfm::cp {
namespace {

using testsupport::Reply;

class QuotasTest : public testsupport::SecretsApiTest {
 protected:
  void configure(Config& cfg) override {
    SecretsApiTest::configure(cfg);
    cfg.quotas[Quota::kInstances] = 7;  // the operator's default, seen by GET
  }

  struct Org {
    std::string org, app, env;
  };
  Org makeOrgEnv(const std::string& name) {
    Org o;
    o.org = makeOrg(name);
    o.app = makeApp(o.org, "web");
    o.env = makeEnv(o.app, "prod");
    return o;
  }
  Reply setQuotas(const std::string& org, const json::Json& body,
                  const std::optional<std::string>& token = std::nullopt) {
    return callJson("PUT", "/v1/orgs/" + org + "/quotas", body, token);
  }
  Reply scale(const std::string& env, int64_t n,
              const std::optional<std::string>& token = std::nullopt) {
    return callJson("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", n}}}}, token);
  }
  static json::Json quotaItem(const Reply& r, const std::string& name) {
    for (const auto& it : r.body["items"]) {
      if (it["name"] == name) return it;
    }
    return {};
  }
  static void expectExceeded(const Reply& r, const std::string& quota, int64_t limit, int64_t used,
                             int64_t requested) {
    ASSERT_EQ(r.status, 409) << r.raw;
    const json::Json& e = r.body["error"];
    EXPECT_EQ(e["code"], "quota_exceeded") << r.raw;
    EXPECT_EQ(e["details"]["quota"], quota) << r.raw;
    EXPECT_EQ(e["details"]["limit"], std::to_string(limit)) << r.raw;
    EXPECT_EQ(e["details"]["used"], std::to_string(used)) << r.raw;
    EXPECT_EQ(e["details"]["requested"], std::to_string(requested)) << r.raw;
    const std::string msg = e["message"];
    EXPECT_NE(msg.find("'" + quota + "'"), std::string::npos) << msg;
  }
  int64_t owners(const std::string& org) {
    auto conn = connect();
    auto rs = conn.exec(
        "SELECT count(*) FROM org_members_view WHERE org_id = $1 AND role = 'owner'", {org});
    EXPECT_TRUE(rs.has_value());
    return rs ? rs->int64(0, 0).value_or(-1) : -1;
  }
};

// Each case sets one limit through the admin API, adds `limit / unit` units
// (each passes), then one more, which is refused naming the limit.
struct QuotaCase {
  std::string quota;
  int64_t limit;
  int64_t unit;  // what one step adds to the use
  std::function<void(const std::string& app, const std::string& env)> setup;
  std::function<Reply(const std::string& app, const std::string& env, int step)> add;
};

TEST_F(QuotasTest, EachQuotaPassesAtItsLimitAndRefusesOneMore) {
  const std::vector<QuotaCase> cases = {
      {"instances", 3, 1, nullptr,
       [this](const std::string&, const std::string& env, int step) {
         return scale(env, step + 1);
       }},
      {"memory_mb", 768, 256,
       [this](const std::string& app, const std::string& env) {
         const std::string rel = makeReleaseWith(app, webManifest(1, 256));
         auto d = callJson("POST", "/v1/envs/" + env + "/deploys", {{"release_id", rel}});
         EXPECT_EQ(d.status, 201) << d.raw;
       },
       [this](const std::string&, const std::string& env, int step) {
         return scale(env, step + 1);
       }},
      {"releases_per_app", 2, 1, nullptr,
       [this](const std::string& app, const std::string&, int) {
         return callJson("POST", "/v1/apps/" + app + "/releases",
                         {{"image_ref", "registry.local/hello:1"},
                          {"image_digest", "sha256:" + std::string(64, 'c')},
                          {"manifest", webManifest(1, 128)}});
       }},
      {"routes", 2, 1, nullptr,
       [this](const std::string&, const std::string& env, int step) {
         return callJson("POST", "/v1/envs/" + env + "/routes",
                         {{"hostname", "h" + std::to_string(step) + ".example.com"},
                          {"process_type", "web"},
                          {"backend_port", 8080}});
       }},
      {"secrets_bytes", 30, 10, nullptr,
       [this](const std::string&, const std::string& env, int step) {
         // "K<n>" and 8 bytes of value: 10 bytes a step.
         return setSecrets(env, {{"K" + std::to_string(step), "12345678"}});
       }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.quota);
    std::string name = c.quota;
    std::replace(name.begin(), name.end(), '_', '-');
    const Org o = makeOrgEnv(name);
    auto set = setQuotas(o.org, {{c.quota, c.limit}});
    ASSERT_EQ(set.status, 200) << set.raw;
    EXPECT_EQ(quotaItem(set, c.quota)["limit"], c.limit) << set.raw;
    EXPECT_EQ(quotaItem(set, c.quota)["overridden"], true) << set.raw;
    if (c.setup) c.setup(o.app, o.env);
    const int steps = static_cast<int>(c.limit / c.unit);
    for (int i = 0; i < steps; ++i) {
      auto r = c.add(o.app, o.env, i);
      ASSERT_TRUE(r.status == 200 || r.status == 201) << "step " << i << ": " << r.raw;
    }
    auto over = c.add(o.app, o.env, steps);
    expectExceeded(over, c.quota, c.limit, c.limit, c.unit);
    auto get = call("GET", "/v1/orgs/" + o.org + "/quotas");
    ASSERT_EQ(get.status, 200) << get.raw;
    EXPECT_EQ(quotaItem(get, c.quota)["used"], c.limit) << get.raw;
  }
}

TEST_F(QuotasTest, DefaultsComeFromTheOperatorAndOverridesAreIdempotentAdminEvents) {
  const Org o = makeOrgEnv("defaults");
  auto get = call("GET", "/v1/orgs/" + o.org + "/quotas");
  ASSERT_EQ(get.status, 200) << get.raw;
  ASSERT_EQ(get.body["items"].size(), 5u) << get.raw;
  EXPECT_EQ(get.body["items"][0]["name"], "instances");
  EXPECT_EQ(quotaItem(get, "instances")["limit"], 7) << get.raw;
  EXPECT_EQ(quotaItem(get, "instances")["default"], 7) << get.raw;
  EXPECT_EQ(quotaItem(get, "instances")["overridden"], false) << get.raw;

  // Only admins override; a user (even the org's owner) gets 403.
  auto [bobId, bob] = makeUser("bob");
  const std::string bobs = makeOrg("bobs", bob);
  auto denied = setQuotas(bobs, {{"instances", 1000}}, bob);
  EXPECT_EQ(denied.status, 403) << denied.raw;
  // Typed at the edge: each bad field is named.
  for (const json::Json& bad : {json::Json{{"instances", -1}}, json::Json{{"routes", "3"}},
                                json::Json{{"memory", 1}}, json::Json{{"secrets_bytes", 1.5}}}) {
    auto r = setQuotas(o.org, bad);
    EXPECT_EQ(r.status, 400) << r.raw;
    EXPECT_TRUE(r.body["error"]["details"].contains("field")) << r.raw;
  }
  http::Headers key;
  key.set("Idempotency-Key", "quota-set-1");
  const std::string body = json::dump({{"instances", 2}, {"routes", nullptr}});
  auto first = call("PUT", "/v1/orgs/" + o.org + "/quotas", body, std::nullopt, key);
  ASSERT_EQ(first.status, 200) << first.raw;
  auto again = call("PUT", "/v1/orgs/" + o.org + "/quotas", body, std::nullopt, key);
  EXPECT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(again.raw, first.raw);
  EXPECT_EQ(countEvents("org.quotas_set"), 1);
  EXPECT_EQ(quotaItem(first, "instances")["limit"], 2) << first.raw;
  // Back to the default with null.
  auto reset = setQuotas(o.org, {{"instances", nullptr}});
  EXPECT_EQ(quotaItem(reset, "instances")["limit"], 7) << reset.raw;
  EXPECT_EQ(quotaItem(reset, "instances")["overridden"], false) << reset.raw;
  // Lowering use always passes, even over a lowered limit.
  ASSERT_EQ(scale(o.env, 5).status, 200);
  ASSERT_EQ(setQuotas(o.org, {{"instances", 1}}).status, 200);
  EXPECT_EQ(scale(o.env, 3).status, 200);
  expectExceeded(scale(o.env, 4), "instances", 1, 3, 1);
  // Other orgs cannot see an org's quotas.
  EXPECT_EQ(call("GET", "/v1/orgs/" + o.org + "/quotas", "", bob).status, 404);
}

TEST_F(QuotasTest, ConcurrentScaleUpsCannotBothPass) {
  const std::string org = makeOrg("racers");
  const std::string app = makeApp(org, "web");
  std::vector<std::string> envs;
  envs.reserve(6);
  for (int i = 0; i < 6; ++i) envs.push_back(makeEnv(app, "e" + std::to_string(i)));
  ASSERT_EQ(setQuotas(org, {{"instances", 4}}).status, 200);
  for (int round = 0; round < 2; ++round) {
    std::vector<std::future<Reply>> calls;
    calls.reserve(envs.size());
    for (const auto& env : envs) {
      calls.push_back(std::async(std::launch::async, [&, env] { return scale(env, 1); }));
    }
    int passed = 0;
    int refused = 0;
    for (auto& c : calls) {
      Reply r = c.get();
      if (r.status == 200) ++passed;
      if (r.status == 409 && r.body["error"]["code"] == "quota_exceeded") ++refused;
    }
    // Each env asks for 1 instance; 4 fit in round 0, and round 1 asks for
    // nothing new on those envs.
    EXPECT_EQ(passed, 4) << "round " << round;
    EXPECT_EQ(refused, 2) << "round " << round;
  }
  auto get = call("GET", "/v1/orgs/" + org + "/quotas");
  EXPECT_EQ(quotaItem(get, "instances")["used"], 4) << get.raw;
}

TEST_F(QuotasTest, MembersDeployButCannotDeleteOrChangeMembers) {
  const Org o = makeOrgEnv("roles");
  auto [bobId, bob] = makeUser("bob");
  auto [carolId, carol] = makeUser("carol");
  ASSERT_EQ(
      callJson("POST", "/v1/orgs/" + o.org + "/members", {{"user_id", bobId}, {"role", "member"}})
          .status,
      201);
  ASSERT_EQ(
      callJson("POST", "/v1/orgs/" + o.org + "/members", {{"user_id", carolId}, {"role", "member"}})
          .status,
      201);
  struct Forbidden {
    std::string method, path;
    json::Json body;
  };
  const std::vector<Forbidden> forbidden = {
      {"DELETE", "/v1/envs/" + o.env, nullptr},
      {"DELETE", "/v1/apps/" + o.app, nullptr},
      {"DELETE", "/v1/orgs/" + o.org, nullptr},
      {"POST", "/v1/orgs/" + o.org + "/members", {{"user_id", bobId}, {"role", "owner"}}},
      {"POST", "/v1/orgs/" + o.org + "/members", {{"user_id", carolId}, {"role", "owner"}}},
      {"DELETE", "/v1/orgs/" + o.org + "/members/" + carolId, nullptr},
  };
  for (const auto& f : forbidden) {
    SCOPED_TRACE(f.method + " " + f.path);
    auto r = call(f.method, f.path, f.body.is_null() ? "" : json::dump(f.body), bob);
    EXPECT_EQ(r.status, 403) << r.raw;
    EXPECT_NE(r.raw.find("your role is 'member'"), std::string::npos) << r.raw;
  }
  // The admin-only quota override is refused too.
  EXPECT_EQ(setQuotas(o.org, {{"instances", 100}}, bob).status, 403);

  // What a member may do: releases, deploys, scale, secrets, logs, quotas.
  auto rel = callJson("POST", "/v1/apps/" + o.app + "/releases",
                      {{"image_ref", "registry.local/hello:1"},
                       {"image_digest", "sha256:" + std::string(64, 'd')},
                       {"manifest", webManifest(1, 128)}},
                      bob);
  ASSERT_EQ(rel.status, 201) << rel.raw;
  auto dep =
      callJson("POST", "/v1/envs/" + o.env + "/deploys", {{"release_id", rel.body["id"]}}, bob);
  EXPECT_EQ(dep.status, 201) << dep.raw;
  EXPECT_EQ(scale(o.env, 2, bob).status, 200);
  auto sec =
      callJson("POST", "/v1/envs/" + o.env + "/secrets/set", {{"values", {{"API_KEY", "x"}}}}, bob);
  EXPECT_EQ(sec.status, 201) << sec.raw;
  EXPECT_NE(call("GET", "/v1/envs/" + o.env + "/logs", "", bob).status, 403);
  EXPECT_EQ(call("GET", "/v1/orgs/" + o.org + "/quotas", "", bob).status, 200);
  // Owners keep full rights: the env goes, then the app.
  EXPECT_EQ(call("DELETE", "/v1/envs/" + o.env).status, 200);
  EXPECT_EQ(call("DELETE", "/v1/apps/" + o.app).status, 200);
}

TEST_F(QuotasTest, TheLastOwnerSurvivesConcurrentRemovalsAndDemotions) {
  // Plain names, not structured bindings: the lambdas below capture them.
  const auto bob_user = makeUser("bob");
  const std::string& bobId = bob_user.first;
  const std::string& bob = bob_user.second;
  const std::string adminId = call("GET", "/v1/whoami").body["user_id"];
  const std::string& admin = admin_token_;
  // Alone, an owner can neither leave nor become a member.
  const std::string solo = makeOrg("solo");
  auto demote =
      callJson("POST", "/v1/orgs/" + solo + "/members", {{"user_id", adminId}, {"role", "member"}});
  EXPECT_EQ(demote.status, 409) << demote.raw;
  EXPECT_EQ(call("DELETE", "/v1/orgs/" + solo + "/members/" + adminId).status, 409);
  EXPECT_EQ(owners(solo), 1);

  // Two owners remove (or demote) each other at once: one wins.
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string org = makeOrg("race" + std::to_string(round));
    ASSERT_EQ(
        callJson("POST", "/v1/orgs/" + org + "/members", {{"user_id", bobId}, {"role", "owner"}})
            .status,
        201);
    const bool remove = round % 2 == 0;
    auto act = [&](const std::string& target, const std::string& token) {
      std::string path = "/v1/orgs/" + org + "/members";
      if (remove) return call("DELETE", path.append("/").append(target), "", token);
      return callJson("POST", path, {{"user_id", target}, {"role", "member"}}, token);
    };
    auto a = std::async(std::launch::async, [&] { return act(bobId, admin); });
    auto b = std::async(std::launch::async, [&] { return act(adminId, bob); });
    const Reply ra = a.get();
    const Reply rb = b.get();
    const int won = (ra.status / 100 == 2 ? 1 : 0) + (rb.status / 100 == 2 ? 1 : 0);
    EXPECT_EQ(won, 1) << ra.raw << "\n" << rb.raw;
    EXPECT_EQ(owners(org), 1);
  }
}

}  // namespace
}  // namespace plfm::cp
