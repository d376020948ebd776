// Hostname ownership (docs/specs/ingress/domains.md, docs/security.md
// "Control plane: parse, then act"): domains proven by a DNS TXT record
// served by a local responder, wildcard routes that need one, verified
// domains that stop other orgs, and wildcards under public suffixes that
// nobody may claim.
#include <gtest/gtest.h>

#include "api_test_support.h"
#include "plfm/testing/dns_server.h"

namespace plfm::cp {
namespace {

using testsupport::ApiTest;
using testsupport::Reply;

class DomainsApiTest : public ApiTest {
 protected:
  struct Tenant {
    std::string token, org, env;
  };
  void configure(Config& cfg) override {
    cfg.dns_resolver = dns_.address();
    cfg.dns_timeout = std::chrono::seconds(1);
  }
  // A non-admin user with an org, an app and an env.
  Tenant tenant(const std::string& name) {
    Tenant t;
    t.token = makeUser(name).second;
    t.org = makeOrg(name + "-org", t.token);
    auto app = callJson("POST", "/v1/orgs/" + t.org + "/apps", {{"name", "web"}}, t.token);
    auto env = callJson("POST", "/v1/apps/" + app.body.value("id", "") + "/envs",
                        {{"name", "prod"}}, t.token);
    t.env = env.body.value("id", "");
    return t;
  }
  // The platform admin, with an org of its own.
  Tenant admin() {
    Tenant t;
    t.token = admin_token_;
    t.org = makeOrg("ops");
    t.env = makeEnv(makeApp(t.org, "web"), "prod");
    return t;
  }
  Reply route(const Tenant& t, const std::string& hostname) {
    return callJson("POST", "/v1/envs/" + t.env + "/routes",
                    {{"hostname", hostname}, {"process_type", "web"}, {"backend_port", 80}},
                    t.token);
  }
  Reply addDomain(const Tenant& t, const std::string& domain) {
    return callJson("POST", "/v1/orgs/" + t.org + "/domains", {{"domain", domain}}, t.token);
  }
  Reply verify(const Tenant& t, const std::string& id) {
    return call("POST", "/v1/domains/" + id + "/verify", "{}", t.token);
  }
  // Adds `domain` to t's org and proves it; returns its id.
  std::string proven(const Tenant& t, const std::string& domain) {
    auto d = addDomain(t, domain);
    EXPECT_EQ(d.status, 201) << d.raw;
    dns_.setTxt("_plfm-challenge." + domain, {d.body.value("challenge_value", "")});
    auto v = verify(t, d.body.value("id", ""));
    EXPECT_EQ(v.status, 200) << v.raw;
    EXPECT_EQ(v.body.value("status", ""), "verified") << v.raw;
    return d.body.value("id", "");
  }
  static std::string code(const Reply& r) {
    return r.body.contains("error") ? r.body["error"].value("code", "") : "";
  }

  testing::DnsServer dns_;
};

TEST_F(DomainsApiTest, AWildcardNeedsAVerifiedDomainAndTheRightToken) {
  const Tenant bob = tenant("bob");
  // No proof: refused, naming what to do.
  auto none = route(bob, "*.example.com");
  ASSERT_EQ(none.status, 403) << none.raw;
  EXPECT_EQ(none.body["error"]["details"]["field"], "hostname");
  EXPECT_NE(none.raw.find("vt domains add example.com"), std::string::npos) << none.raw;

  http::Headers key;
  key.set("Idempotency-Key", "domain-add-1");
  auto d = call("POST", "/v1/orgs/" + bob.org + "/domains", R"({"domain":"Example.COM."})",
                bob.token, key);
  ASSERT_EQ(d.status, 201) << d.raw;
  const std::string id = d.body["id"];
  EXPECT_EQ(d.body["domain"], "example.com");
  EXPECT_EQ(d.body["status"], "pending");
  EXPECT_EQ(d.body["challenge_name"], "_plfm-challenge.example.com");
  const std::string challenge = d.body["challenge_value"];
  EXPECT_TRUE(challenge.starts_with("plfm-verify=")) << challenge;
  auto replay = call("POST", "/v1/orgs/" + bob.org + "/domains", R"({"domain":"Example.COM."})",
                     bob.token, key);
  EXPECT_EQ(replay.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(replay.body["id"], id);
  EXPECT_EQ(countEvents("domain.created"), 1);
  EXPECT_EQ(addDomain(bob, "example.com").status, 409);  // already claimed by this org

  // No record, then a wrong token: not verified, and the wildcard stays refused.
  auto missing = verify(bob, id);
  EXPECT_EQ(missing.status, 422) << missing.raw;
  EXPECT_EQ(code(missing), "domain_not_verified");
  dns_.setTxt("_plfm-challenge.example.com", {"plfm-verify=someone-elses-token", "v=spf1 -all"});
  auto wrong = verify(bob, id);
  EXPECT_EQ(wrong.status, 422) << wrong.raw;
  EXPECT_EQ(wrong.body["error"]["details"]["txt_records"], "2");
  EXPECT_EQ(wrong.raw.find(challenge), std::string::npos) << "the challenge is not echoed";
  EXPECT_EQ(route(bob, "*.example.com").status, 403);

  // The right token among others: verified once; verifying again changes nothing.
  dns_.setTxt("_plfm-challenge.example.com", {"v=spf1 -all", challenge});
  auto ok = verify(bob, id);
  ASSERT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(ok.body["status"], "verified");
  EXPECT_EQ(verify(bob, id).status, 200);
  EXPECT_EQ(countEvents("domain.verified"), 1);
  EXPECT_EQ(route(bob, "*.example.com").status, 201);
  EXPECT_EQ(route(bob, "*.shop.example.com").status, 201);  // a parent's proof covers it
  EXPECT_EQ(route(bob, "*.example.org").status, 403);       // another domain does not

  auto list = call("GET", "/v1/orgs/" + bob.org + "/domains", "", bob.token);
  ASSERT_EQ(list.status, 200) << list.raw;
  ASSERT_EQ(list.body["items"].size(), 1U);
  EXPECT_EQ(list.body["items"][0]["status"], "verified");
  // Deleting it ends the proof for new claims.
  EXPECT_EQ(call("DELETE", "/v1/domains/" + id, "", bob.token).status, 200);
  EXPECT_EQ(route(bob, "*.www.example.com").status, 403);
  EXPECT_EQ(countEvents("domain.deleted"), 1);
}

TEST_F(DomainsApiTest, AnotherOrgsVerifiedDomainStopsEveryClaimUnderIt) {
  const Tenant alice = tenant("alice");
  const Tenant bob = tenant("bob");
  proven(alice, "example.com");
  for (const std::string h :
       {"*.example.com", "a.example.com", "example.com", "x.y.example.com", "*.deep.example.com"}) {
    auto r = route(bob, h);
    EXPECT_EQ(r.status, 409) << h << " " << r.raw;
    EXPECT_EQ(code(r), "domain_conflict") << h;
    EXPECT_EQ(r.body["error"]["details"]["domain"], "example.com");
  }
  // Not even a platform admin routes it into another org.
  EXPECT_EQ(code(route(admin(), "a.example.com")), "domain_conflict");
  // Bob cannot claim the domain, a name under it, or the name above it.
  EXPECT_EQ(code(addDomain(bob, "example.com")), "domain_conflict");
  EXPECT_EQ(code(addDomain(bob, "shop.example.com")), "domain_conflict");
  // Names beside it stay free; alice routes hers.
  EXPECT_EQ(route(bob, "example.org").status, 201);
  EXPECT_EQ(route(bob, "notexample.com").status, 201);
  EXPECT_EQ(route(alice, "a.example.com").status, 201);
  EXPECT_EQ(route(alice, "*.example.com").status, 201);
  // Other orgs' domains look missing.
  auto alices = call("GET", "/v1/orgs/" + alice.org + "/domains", "", alice.token);
  const std::string id = alices.body["items"][0]["id"];
  EXPECT_EQ(call("GET", "/v1/domains/" + id, "", bob.token).status, 404);
  EXPECT_EQ(call("POST", "/v1/domains/" + id + "/verify", "{}", bob.token).status, 404);
  EXPECT_EQ(call("DELETE", "/v1/domains/" + id, "", bob.token).status, 404);
}

TEST_F(DomainsApiTest, TwoOrgsCannotBothVerifyOverlappingDomains) {
  const Tenant alice = tenant("alice");
  const Tenant bob = tenant("bob");
  auto b = addDomain(bob, "shop.example.com");
  ASSERT_EQ(b.status, 201) << b.raw;
  proven(alice, "example.com");
  // Bob's pending claim can no longer be verified, even with its record.
  dns_.setTxt("_plfm-challenge.shop.example.com", {b.body.value("challenge_value", "")});
  EXPECT_EQ(code(verify(bob, b.body.value("id", ""))), "domain_conflict");
}

TEST_F(DomainsApiTest, AnOrgHoldsAtMostAHundredDomains) {
  const Tenant bob = tenant("bob");
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(addDomain(bob, "d" + std::to_string(i) + ".example.com").status, 201) << i;
  }
  auto over = addDomain(bob, "one-more.example.com");
  EXPECT_EQ(over.status, 409) << over.raw;
  EXPECT_EQ(over.body["error"]["details"]["limit"], "100");
}

TEST_F(DomainsApiTest, WildcardsUnderAPublicSuffixAreRefusedEvenForAdmins) {
  const Tenant bob = tenant("bob");
  const Tenant ops = admin();
  for (const std::string h : {"*.com", "*.co.uk", "*.github.io", "*.uk"}) {
    auto r = route(ops, h);
    EXPECT_EQ(r.status, 403) << h << " " << r.raw;
    EXPECT_NE(r.raw.find("public suffix"), std::string::npos) << r.raw;
  }
  for (const std::string d : {"com", "co.uk", "github.io"}) {
    auto r = addDomain(bob, d);
    EXPECT_EQ(r.status, 400) << d << " " << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], "domain");
  }
  for (const std::string d : {"*.example.com", "a b.com", "", "x"}) {
    EXPECT_EQ(addDomain(bob, d).status, 400) << d;
  }
  // A registrable name under the suffix is fine for an admin.
  EXPECT_EQ(route(ops, "*.example.co.uk").status, 201);
}

TEST_F(DomainsApiTest, AResolverThatNeverAnswersIsAClearErrorAndNoTransactionWaits) {
  const Tenant bob = tenant("bob");
  auto d = addDomain(bob, "example.com");
  dns_.setSilent(true);
  const auto start = std::chrono::steady_clock::now();
  auto r = verify(bob, d.body.value("id", ""));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, 502) << r.raw;
  EXPECT_EQ(code(r), "dns_lookup_failed");
  EXPECT_NE(r.raw.find("did not answer within 1s"), std::string::npos) << r.raw;
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_GE(dns_.queries(), 1);
  EXPECT_EQ(countEvents("domain.verified"), 0);
}

class DomainsWithoutResolverTest : public ApiTest {};

TEST_F(DomainsWithoutResolverTest, VerificationIsRefusedButAdminsCanStillClaim) {
  auto [user, token] = makeUser("bob");
  const std::string org = makeOrg("bob-org", token);
  auto d = callJson("POST", "/v1/orgs/" + org + "/domains", {{"domain", "example.com"}}, token);
  ASSERT_EQ(d.status, 201) << d.raw;
  auto v = call("POST", "/v1/domains/" + d.body.value("id", "") + "/verify", "{}", token);
  EXPECT_EQ(v.status, 503) << v.raw;
  EXPECT_NE(v.raw.find("--dns-resolver"), std::string::npos) << v.raw;
  const std::string env = makeEnv(makeApp(makeOrg("ops"), "web"), "prod");
  EXPECT_EQ(callJson("POST", "/v1/envs/" + env + "/routes",
                     {{"hostname", "*.example.com"}, {"process_type", "web"}, {"backend_port", 80}})
                .status,
            201);
}

class DomainsWithoutSuffixListTest : public ApiTest {
 protected:
  void configure(Config& cfg) override { cfg.public_suffix_file = "/nonexistent/psl.dat"; }
};

TEST_F(DomainsWithoutSuffixListTest, WildcardsFailClosed) {
  const std::string env = makeEnv(makeApp(makeOrg("ops"), "web"), "prod");
  auto wild =
      callJson("POST", "/v1/envs/" + env + "/routes",
               {{"hostname", "*.example.com"}, {"process_type", "web"}, {"backend_port", 80}});
  EXPECT_EQ(wild.status, 503) << wild.raw;
  EXPECT_NE(wild.raw.find("/nonexistent/psl.dat"), std::string::npos) << wild.raw;
  EXPECT_EQ(callJson("POST", "/v1/envs/" + env + "/routes",
                     {{"hostname", "a.example.com"}, {"process_type", "web"}, {"backend_port", 80}})
                .status,
            201);
}

}  // namespace
}  // namespace plfm::cp
