// Per-org registry credentials through the real API (docs/specs/api/v1.md,
// "Registry credentials"; docs/security.md, "Node: image references are
// tenant input"): login, list, update and remove without the secret ever
// coming back; idempotency with a keyed MAC; members only; bad input that
// names the field and never the secret; the node fetch, which serves only
// the credential of the registry an instance on that node pulls from, of
// that instance's org; and master key rotation. The secrets of every flow
// are canaries searched in every response, the log, the state dir and the
// database (except the sealed table).
#include <gtest/gtest.h>

#include "plfm/core/log.h"
#include "plfm/testing/leak_scan.h"
#include "registry_credentials.h"
#include "secrets_admin.h"
#include "secrets_test_support.h"

namespace plfm::cp {
namespace {

using testsupport::Reply;

class RegistriesTest : public testsupport::SecretsApiTest {
 protected:
  Reply keep(const std::string& what, Reply r) {
    responses_.emplace_back(what, r.raw);
    return r;
  }
  Reply login(const std::string& org, const std::string& host, const std::string& user,
              const std::string& password, const std::optional<std::string>& token = std::nullopt) {
    return keep("login " + host, callJson("PUT", "/v1/orgs/" + org + "/registries/" + host,
                                          {{"username", user}, {"password", password}}, token));
  }
  Reply nodeFetch(const Deployed& d, const std::string& inst, const std::string& token = "") {
    return keep("fetch",
                call("GET", "/v1/nodes/" + d.node + "/instances/" + inst + "/registry-credentials",
                     "", token.empty() ? d.node_token : token));
  }
  std::string scalar(const std::string& sql) {
    auto conn = connect();
    auto rs = conn.exec(sql);
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    return rs && rs->rows() > 0 ? std::string(rs->text(0, 0)) : std::string();
  }
  std::vector<std::pair<std::string, std::string>> responses_;
  plfm::testing::LeakScanner scan_;
};

TEST(RegistryHost, ParsesAndNormalizesHostsAndRefusesTheRest) {
  for (const auto& [in, want] : std::vector<std::pair<std::string, std::string>>{
           {"ghcr.io", "ghcr.io"},
           {"Registry.Example.COM:5000", "registry.example.com:5000"},
           {"127.0.0.1:5000", "127.0.0.1:5000"},
           {"[fd00::1]:5000", "[fd00::1]:5000"},
           {"localhost", "localhost"},
           {"index.docker.io", "docker.io"},
           {"registry-1.docker.io", "docker.io"}}) {
    auto h = registry::parseHost(in, "registry_host");
    ASSERT_TRUE(h) << in << ": " << h.error().toString();
    EXPECT_EQ(*h, want) << in;
  }
  for (const std::string& bad : std::vector<std::string>{
           "", "https://ghcr.io", "ghcr.io/org", "-x.io", "x-.io", "a..b", "x.io:0", "x.io:65536",
           "x.io:05", "x.io:", "[fd00::1", "[not-v6]", "x io", "x.io\n", std::string(300, 'a'),
           std::string("a\0b", 3), "ünï.io", "x.io:80:80", "%2e%2e"}) {
    auto h = registry::parseHost(bad, "registry_host");
    EXPECT_FALSE(h) << "accepted " << bad;
    if (!h) {
      EXPECT_EQ(h.error().detail("field"), "registry_host");
    }
  }
  EXPECT_EQ(registry::hostOfImageRef("registry.local/hello:1"), "registry.local");
  EXPECT_EQ(registry::hostOfImageRef("alpine"), "docker.io");
  EXPECT_EQ(registry::hostOfImageRef("library/alpine@sha256:ab"), "docker.io");
  EXPECT_EQ(registry::hostOfImageRef("LocalHost:5000/x"), "localhost:5000");
  EXPECT_EQ(registry::hostOfImageRef("index.docker.io/library/alpine"), "docker.io");
}

TEST_F(RegistriesTest, LoginListUpdateRemoveAndNoAnswerHoldsTheSecret) {
  log::setLevel(log::Level::kDebug);
  const std::string first = scan_.addCanary("FIRST");
  const std::string second = scan_.addCanary("SECOND");
  const std::string org = makeOrg("regs");
  auto a = login(org, "Registry.Example.com:5000", "deploy-bot", first);
  ASSERT_EQ(a.status, 201) << a.raw;
  EXPECT_EQ(a.body["registry"], "registry.example.com:5000");
  EXPECT_EQ(a.body["username"], "deploy-bot");
  EXPECT_EQ(a.body["version"], 1);
  EXPECT_TRUE(a.body["id"].get<std::string>().starts_with("rcred_")) << a.raw;
  ASSERT_EQ(login(org, "ghcr.io", "octo", first).status, 201);

  auto list = keep("list", call("GET", "/v1/orgs/" + org + "/registries"));
  ASSERT_EQ(list.status, 200) << list.raw;
  ASSERT_EQ(list.body["items"].size(), 2U);
  EXPECT_EQ(list.body["items"][0]["registry"], "ghcr.io");  // sorted by host
  EXPECT_EQ(list.body["items"][1]["registry"], "registry.example.com:5000");
  EXPECT_EQ(list.body["items"][1]["created_at"], list.body["items"][1]["updated_at"]);

  // An update: same id, next version, new username; created_* kept.
  auto b = login(org, "registry.example.com:5000", "deploy-bot-2", second);
  ASSERT_EQ(b.status, 200) << b.raw;
  EXPECT_EQ(b.body["id"], a.body["id"]);
  EXPECT_EQ(b.body["version"], 2);
  EXPECT_EQ(b.body["username"], "deploy-bot-2");
  EXPECT_EQ(b.body["created_at"], a.body["created_at"]);

  auto rm = keep("rm", call("DELETE", "/v1/orgs/" + org + "/registries/ghcr.io"));
  ASSERT_EQ(rm.status, 200) << rm.raw;
  EXPECT_EQ(rm.body["removed"], true);
  auto again = keep("rm again", call("DELETE", "/v1/orgs/" + org + "/registries/ghcr.io"));
  EXPECT_EQ(again.status, 404) << again.raw;
  auto after = keep("list after", call("GET", "/v1/orgs/" + org + "/registries"));
  ASSERT_EQ(after.body["items"].size(), 1U);
  EXPECT_EQ(after.body["items"][0]["username"], "deploy-bot-2");

  EXPECT_EQ(countEvents("registry_credential.set"), 3);
  EXPECT_EQ(countEvents("registry_credential.removed"), 1);
  // Events carry ids, the host and the version: not the username either.
  EXPECT_EQ(scalar("SELECT count(*) FROM events WHERE event_type LIKE 'registry_credential.%' "
                   "AND payload::text LIKE '%deploy-bot%'"),
            "0");
  // The removal deleted the sealed row; the other is sealed.
  EXPECT_EQ(scalar("SELECT count(*) FROM registry_credentials WHERE org_id = '" + org + "'"), "1");

  log::flush();
  for (const auto& [what, raw] : responses_) scan_.scanText("response to " + what, raw);
  scan_.scanDir(state_->path());
  auto conn = connect();
  (void)scan_.scanDatabase(conn, {"registry_credentials"});
  scan_.expectClean();
}

TEST_F(RegistriesTest, IdempotentReplayAndTheRecordHoldsAMac) {
  const std::string org = makeOrg("regidem");
  const std::string path = "/v1/orgs/" + org + "/registries/ghcr.io";
  const std::string body = json::dump({{"username", "u"}, {"password", "replay-me-pw"}});
  http::Headers h;
  h.set("Idempotency-Key", "registry-key-1");
  auto first = call("PUT", path, body, std::nullopt, h);
  ASSERT_EQ(first.status, 201) << first.raw;
  auto again = call("PUT", path, body, std::nullopt, h);
  ASSERT_EQ(again.status, 201) << again.raw;
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(again.body["version"], 1);
  auto other =
      call("PUT", path, json::dump({{"username", "u"}, {"password", "other"}}), std::nullopt, h);
  EXPECT_EQ(other.status, 422) << other.raw;
  EXPECT_EQ(countEvents("registry_credential.set"), 1);
  EXPECT_TRUE(scalar("SELECT request_hash FROM idempotency_keys WHERE key = 'registry-key-1'")
                  .starts_with("mac:"));
  EXPECT_EQ(scalar("SELECT count(*) FROM idempotency_keys WHERE response_body LIKE "
                   "'%replay-me-pw%'"),
            "0");
}

TEST_F(RegistriesTest, OnlyMembersOfTheOrgSeeOrChangeItsCredentials) {
  const std::string org = makeOrg("regown");
  ASSERT_EQ(login(org, "ghcr.io", "octo", "owner-pw").status, 201);
  auto [stranger_id, stranger] = makeUser("stranger");
  auto [member_id, member] = makeUser("member");
  ASSERT_EQ(
      callJson("POST", "/v1/orgs/" + org + "/members", {{"user_id", member_id}, {"role", "member"}})
          .status,
      201);
  const std::string base = "/v1/orgs/" + org + "/registries";
  EXPECT_EQ(call("GET", base, "", stranger).status, 404);
  EXPECT_EQ(login(org, "ghcr.io", "evil", "x", stranger).status, 404);
  EXPECT_EQ(call("DELETE", base + "/ghcr.io", "", stranger).status, 404);
  // The stranger's own org does not see the first org's entry either.
  const std::string theirs = makeOrg("regthief", stranger);
  auto mine = call("GET", "/v1/orgs/" + theirs + "/registries", "", stranger);
  ASSERT_EQ(mine.status, 200) << mine.raw;
  EXPECT_TRUE(mine.body["items"].empty());
  // Unchanged by the stranger; a member may change it, as with secrets.
  auto list = call("GET", base);
  EXPECT_EQ(list.body["items"][0]["username"], "octo");
  EXPECT_EQ(list.body["items"][0]["version"], 1);
  EXPECT_EQ(login(org, "ghcr.io", "octo-2", "member-pw", member).status, 200);
  EXPECT_EQ(call("GET", base, "", member).body["items"][0]["updated_by"], member_id);
  EXPECT_EQ(call("DELETE", base + "/ghcr.io", "", member).status, 200);
}

TEST_F(RegistriesTest, BadInputNamesTheFieldAndNeverTheSecret) {
  const std::string canary = scan_.addCanary("BAD");
  const std::string org = makeOrg("regbad");
  const std::string base = "/v1/orgs/" + org + "/registries/";
  struct Case {
    std::string what, host;
    json::Json body;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"scheme", "https:%2F%2Fghcr.io", {{"username", "u"}, {"password", canary}}, ""},
      {"bad port", "ghcr.io:99999", {{"username", "u"}, {"password", canary}}, "registry_host"},
      {"bad label", "-ghcr.io", {{"username", "u"}, {"password", canary}}, "registry_host"},
      {"colon user", "ghcr.io", {{"username", "a:b"}, {"password", canary}}, "username"},
      {"no user", "ghcr.io", {{"password", canary}}, "username"},
      {"empty pw", "ghcr.io", {{"username", "u"}, {"password", ""}}, "password"},
      {"pw not string", "ghcr.io", {{"username", "u"}, {"password", {{"x", canary}}}}, "password"},
      {"nul pw",
       "ghcr.io",
       {{"username", "u"}, {"password", canary + std::string(1, '\0')}},
       "password"},
      {"huge pw",
       "ghcr.io",
       {{"username", "u"}, {"password", canary + std::string(9000, 'x')}},
       "password"},
      {"secret as key", "ghcr.io", {{"username", "u"}, {"password", "p"}, {canary, 1}}, ""},
      {"typo", "ghcr.io", {{"username", "u"}, {"pasword", canary}}, "pasword"},
  };
  for (const auto& c : cases) {
    auto r = keep(c.what, callJson("PUT", base + c.host, c.body));
    EXPECT_EQ(r.status / 100, 4) << c.what << ": " << r.raw;
    if (!c.field.empty()) {
      EXPECT_EQ(r.body["error"]["details"]["field"], c.field) << c.what << ": " << r.raw;
    }
  }
  keep("bad json", call("PUT", base + "ghcr.io", R"({"username":"u","password":")" + canary));
  EXPECT_EQ(call("GET", "/v1/orgs/" + org + "/registries").body["items"].size(), 0U);
  EXPECT_EQ(countEvents("registry_credential.set"), 0);
  log::flush();
  for (const auto& [what, raw] : responses_) scan_.scanText("response to " + what, raw);
  scan_.scanDir(state_->path());
  scan_.expectClean();
}

TEST_F(RegistriesTest, ANodeGetsOnlyTheCredentialOfItsInstancesRegistryAndOrg) {
  const std::string secret = scan_.addCanary("NODEPW");
  const std::string other_secret = scan_.addCanary("OTHERPW");
  const Deployed d = deployedEnv("regnode");
  ASSERT_FALSE(d.instance.empty());
  // No credential yet: 404, the agent pulls anonymously.
  auto none = nodeFetch(d, d.instance);
  EXPECT_EQ(none.status, 404) << none.raw;
  EXPECT_EQ(none.body["error"]["details"]["registry"], "registry.local");

  // The release's image is registry.local/hello:1. Another registry's
  // credential of the same org, and another org's for registry.local, are
  // never served for this instance.
  ASSERT_EQ(login(d.org, "ghcr.io", "octo", other_secret).status, 201);
  const std::string other_org = makeOrg("regnode-other");
  ASSERT_EQ(login(other_org, "registry.local", "them", other_secret).status, 201);
  EXPECT_EQ(nodeFetch(d, d.instance).status, 404);

  ASSERT_EQ(login(d.org, "registry.local", "puller", secret).status, 201);
  auto got = nodeFetch(d, d.instance);
  ASSERT_EQ(got.status, 200) << got.raw.substr(0, 100);
  EXPECT_EQ(got.body["registry"], "registry.local");
  EXPECT_EQ(got.body["username"], "puller");
  EXPECT_EQ(got.body["password"], secret);
  EXPECT_EQ(got.header("Cache-Control"), "no-store");
  EXPECT_EQ(countEvents("registry_credential.fetched"), 1);
  responses_.pop_back();  // the one answer that holds the secret

  // Another node, with its own valid credential, gets nothing.
  const auto [other_node, other_token] = enrollNode("regnode2.node");
  auto wrong = keep(
      "other node",
      call("GET", "/v1/nodes/" + other_node + "/instances/" + d.instance + "/registry-credentials",
           "", other_token));
  EXPECT_EQ(wrong.status, 404) << wrong.raw;
  EXPECT_EQ(nodeFetch(d, d.instance, other_token).status, 404);  // another node's token
  // A user token is not a node's.
  EXPECT_EQ(keep("user", call("GET", "/v1/nodes/" + d.node + "/instances/" + d.instance +
                                         "/registry-credentials"))
                .status,
            403);

  // Rotation re-wraps the credential; it still opens.
  const std::string next = keys_.file("next.key");
  ASSERT_TRUE(crypto::generateMasterKeyFile(next).has_value());
  ASSERT_EQ(secretsRotateMasterKey(config_, next), 0);
  EXPECT_EQ(scalar("SELECT count(*) FROM registry_credentials WHERE key_id <> '" +
                   crypto::loadMasterKey(next)->id + "'"),
            "0");
  auto rotated = nodeFetch(d, d.instance);
  ASSERT_EQ(rotated.status, 200);
  EXPECT_EQ(rotated.body["password"], secret);
  responses_.pop_back();

  log::flush();
  for (const auto& [what, raw] : responses_) scan_.scanText("response to " + what, raw);
  scan_.scanDir(state_->path());
  auto conn = connect();
  (void)scan_.scanDatabase(conn, {"registry_credentials"});
  scan_.expectClean();
}

}  // namespace
}  // namespace plfm::cp
