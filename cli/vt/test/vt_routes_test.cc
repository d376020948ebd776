// `vt routes` end to end: the real vt binary against a real control plane on
// a real PostgreSQL. The transcript (receipts, tables, JSON, errors and exit
// codes) is a golden file.
#include <gtest/gtest.h>

#include <memory>

#include <nlohmann/json.hpp>
#include <regex>

#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/testing/pg_cluster.h"
#include "vt_harness.h"

namespace plfm::vt {
namespace {

using plfm::testing::TempDir;
using testing::Transcript;
using testing::VtResult;

const std::string kTestData = std::string(PLFM_TEST_DIR) + "/test/testdata";

// A node agent's HTTP call with its credential; the answer's JSON.
nlohmann::json agentCall(const std::string& url, const std::string& token,
                         const std::string& method, const std::string& path,
                         const nlohmann::json& body) {
  http::ClientRequest req;
  req.method = method;
  req.url = url + path;
  req.headers.set("Authorization", "Bearer " + token);
  if (!body.is_null()) {
    req.headers.set("Content-Type", "application/json");
    req.body = body.dump();
  }
  auto resp = http::request(req);
  EXPECT_TRUE(resp.has_value()) << path;
  if (!resp) return {};
  EXPECT_LT(resp->status, 300) << path << ": " << resp->body;
  return nlohmann::json::parse(resp->body, nullptr, false);
}

class VtRoutesTest : public testing::AcmeOrgTest {
 protected:
  void SetUp() override {
    AcmeOrgTest::SetUp();
    norm_.literal(kTestData, "<testdata>");
  }
};

TEST_F(VtRoutesTest, AddListGetRmMatchGoldenTranscript) {
  Transcript& t = t_;
  ASSERT_EQ(t.run({"apps", "create", "shop", "-q"}).code, 0);
  ASSERT_EQ(t.run({"envs", "create", "prod", "--app", "shop", "-q"}).code, 0);
  const std::vector<std::string> scope = {"--app", "shop", "--env", "prod"};
  auto in = [&](std::vector<std::string> args) {
    args.insert(args.end(), scope.begin(), scope.end());
    return args;
  };

  EXPECT_EQ(t.run(in({"routes", "list", "--format", "table"})).code, 0);
  EXPECT_EQ(
      t.run(in({"routes", "add", "Shop.Example.com.", "--port", "8443", "--format", "table"})).code,
      0);
  EXPECT_EQ(t.run(in({"routes", "add", "*.example.com", "--process", "web", "--port", "8443",
                      "--proxy-protocol", "v2", "--format", "json"}))
                .code,
            0);
  EXPECT_EQ(t.run(in({"routes", "add", "--tcp", "--listener-port", "5432", "--process", "db",
                      "--port", "5432", "-q"}))
                .code,
            0);
  // A taken name (any spelling), a bad name, and usage errors.
  EXPECT_EQ(t.run(in({"routes", "add", "SHOP.example.com", "--port", "9000"})).code, 4);
  EXPECT_EQ(t.run(in({"routes", "add", "bad..name", "--port", "9000"})).code, 1);
  EXPECT_EQ(t.run(in({"routes", "add", "--tcp", "--port", "1"})).code, 2);
  EXPECT_EQ(t.run(in({"routes", "add", "a.example.com"})).code, 2);

  EXPECT_EQ(t.run(in({"routes", "list", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"routes", "list", "--format", "json"})).code, 0);
  EXPECT_EQ(t.run(in({"routes", "get", "shop.example.com", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"routes", "get", "tcp:5432", "--format", "json"})).code, 0);
  EXPECT_EQ(t.run(in({"routes", "rm", "shop.example.com", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"routes", "get", "shop.example.com"})).code, 1);
  EXPECT_EQ(t.run(in({"routes", "rm", "*.example.com", "--format", "json"})).code, 0);
  EXPECT_EQ(t.run(in({"routes", "list", "--format", "table"})).code, 0);
  PLFM_EXPECT_GOLDEN("golden/routes.txt", t.text());
}

// vt deploy creates the manifest's [[services]] routes, changes nothing on a
// second run, and updates a route whose target the manifest changes.
TEST_F(VtRoutesTest, DeployCreatesAndUpdatesTheManifestsRoutes) {
  Transcript& t = t_;
  const std::string v1 = kTestData + "/shop/vt.toml";
  const std::string v2 = kTestData + "/shop/vt-v2.toml";
  EXPECT_EQ(t.run({"deploy", "--manifest", v1, "--detach", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"routes", "list", "--app", "shop", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"deploy", "--manifest", v1, "--detach", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"deploy", "--manifest", v2, "--detach", "--format", "json"}).code, 0);
  EXPECT_EQ(t.run({"routes", "list", "--app", "shop", "--format", "table"}).code, 0);
  // A node runs the instance and reports it healthy: the route shows its backend.
  const VtResult enroll = t.run({"nodes", "enroll", "-q"});
  ASSERT_EQ(enroll.code, 0) << enroll.err;
  const std::string enroll_token(trim(enroll.out));
  const auto node = agentCall(cp_->url, enroll_token, "POST", "/v1/nodes/enroll",
                              {{"hostname", "n1.example"},
                               {"cores", 4},
                               {"memory_mb", 4096},
                               {"disk_mb", 0},
                               {"wireguard_public_key", std::string(43, 'k') + "="},
                               {"underlay_address", "2001:db8::10"},
                               {"runtimes", {"qemu"}}});
  const std::string node_id = node.value("node_id", "");
  const std::string node_token = node.value("token", "");
  const auto plan = agentCall(cp_->url, node_token, "GET",
                              "/v1/nodes/" + node_id + "/plan?after=0&wait=5", nullptr);
  ASSERT_EQ(plan["instances"].size(), 1U) << plan.dump();
  const std::string inst = plan["instances"][0]["instance_id"];
  agentCall(cp_->url, node_token, "POST", "/v1/nodes/" + node_id + "/instances/" + inst + "/status",
            {{"generation", 1}, {"seq", 1}, {"phase", "healthy"}});
  t.note("node " + node_id + " runs " + inst + " and reports it healthy");
  EXPECT_EQ(t.run({"routes", "get", "shop.example.com", "--app", "shop", "--format", "table"}).code,
            0);
  EXPECT_EQ(t.run({"routes", "get", "tcp:9000", "--app", "shop", "--format", "json"}).code, 0);

  // Another env of another app cannot take a hostname the deploy routed.
  ASSERT_EQ(t.run({"apps", "create", "rival", "-q"}).code, 0);
  EXPECT_EQ(t.run({"deploy", "--manifest", kTestData + "/shop/rival.toml", "--detach"}).code, 4);
  PLFM_EXPECT_GOLDEN("golden/deploy_routes.txt", t.text());
}

}  // namespace
}  // namespace plfm::vt
