// `vt instances get` and `vt releases get` end to end: the real vt binary
// against a real control plane on a real PostgreSQL, with the node agent
// played by plain HTTP calls (enrollment, plan, status reports). The
// transcript, in both formats, is a golden file.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "plfm/http/http.h"
#include "vt_harness.h"

namespace plfm::vt {
namespace {

using testing::runVt;
using testing::VtResult;

constexpr std::string_view kManifest = R"(app = "hello"
image = "127.0.0.1:5000/hello@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

[processes.web]
command = ["/hello", "--port", "8443"]

[processes.web.resources]
vcpus = 1
memory_mb = 128

[checks.web]
type = "http"
port = 8080
path = "/healthz"
interval = "5s"
timeout = "1s"

[env]
GREETING = "hi"

[deploy]
strategy = "rolling"
)";

class VtDescribeTest : public testing::AcmeOrgTest {};

TEST_F(VtDescribeTest, InstancesGetAndReleasesGetMatchGoldenTranscript) {
  const std::string manifest = config_.file("vt.toml");
  {
    std::ofstream out(manifest);
    out << kManifest;
  }
  norm_.literal(manifest, "<manifest>");
  auto node = testing::enrollAgentWithVt(cp_->url, config_.path(), "w1.example");
  ASSERT_TRUE(node.contains("node_id")) << node.dump();
  const std::string node_id = node["node_id"];
  const std::string node_token = node["token"];
  t_.note("agent enrolled " + node_id);

  ASSERT_EQ(t_.run({"deploy", "--manifest", manifest, "--detach", "--format", "table"}).code, 0);
  auto plan = testing::nodePlan(cp_->url, node_id, node_token);
  ASSERT_EQ(plan.value("instances", nlohmann::json::array()).size(), 1U) << plan.dump();
  const std::string inst = plan["instances"][0]["instance_id"];
  const std::string release = plan["instances"][0]["release_id"];
  auto report = [&](int seq, const std::string& phase, const std::string& reason) {
    nlohmann::json body = {{"generation", 1},
                           {"seq", seq},
                           {"phase", phase},
                           {"timings", {{"image_ms", 120}, {"start_ms", 30}, {"boot_ms", 1480}}}};
    if (!reason.empty()) body["reason"] = reason;
    EXPECT_EQ(testing::reportInstance(cp_->url, node_id, node_token, inst, body), 200);
  };

  // Placed, not reported yet: no check result, and no log endpoint.
  EXPECT_EQ(t_.run({"instances", "get", inst, "--format", "table"}).code, 0);
  report(1, "booting", "");
  report(2, "healthy", "");
  t_.note("agent reported booting, then healthy");
  EXPECT_EQ(t_.run({"instances", "get", inst, "--lines", "0", "--format", "table"}).code, 0);
  EXPECT_EQ(t_.run({"releases", "get", release, "--format", "table"}).code, 0);
  EXPECT_EQ(t_.run({"releases", "get", release, "--format", "json"}).code, 0);
  report(3, "unhealthy", "http check on port 8080: connection refused");
  t_.note("agent reported unhealthy");
  EXPECT_EQ(t_.run({"instances", "get", inst, "--events", "3", "--format", "table"}).code, 0);
  EXPECT_EQ(t_.run({"instances", "get", inst, "--lines", "0", "--format", "json"}).code, 0);
  EXPECT_EQ(t_.run({"instances", "get", inst, "-q"}).code, 0);

  // Bad input names the argument; a well-formed id nobody has is not found.
  EXPECT_EQ(t_.run({"instances", "get", "inst_nope"}).code, 1);
  EXPECT_EQ(t_.run({"instances", "get", release}).code, 1);
  EXPECT_EQ(t_.run({"instances", "get", inst, "--events", "500"}).code, 2);
  EXPECT_EQ(t_.run({"instances", "get", "inst_01jdq3v7k2m9x4c8r6t0w5y1zb"}).code, 1);
  EXPECT_EQ(t_.run({"releases", "get", "rel_"}).code, 1);
  PLFM_EXPECT_GOLDEN("golden/describe.txt", t_.text());
}

// A member of another org sees neither: exit 1 with the API's not found.
TEST_F(VtDescribeTest, AnotherOrgsMemberGetsNotFound) {
  const std::string manifest = std::string(PLFM_TEST_DIR) + "/test/testdata/hello/vt.toml";
  auto node = testing::enrollAgentWithVt(cp_->url, config_.path(), "w2.example");
  ASSERT_TRUE(node.contains("node_id")) << node.dump();
  ASSERT_EQ(runVt({"deploy", "--manifest", manifest, "--detach"}, config_.path()).code, 0);
  auto plan = testing::nodePlan(cp_->url, node["node_id"], node["token"]);
  ASSERT_EQ(plan.value("instances", nlohmann::json::array()).size(), 1U) << plan.dump();
  const std::string inst = plan["instances"][0]["instance_id"];
  const std::string release = plan["instances"][0]["release_id"];

  // Bob: a user of no org of the admin's, logged in with his own token.
  http::ClientRequest req;
  req.method = "POST";
  req.url = cp_->url + "/v1/users";
  req.headers.set("Authorization", "Bearer " + cp_->admin_token);
  req.headers.set("Content-Type", "application/json");
  req.headers.set("Idempotency-Key", "describe-bob");
  req.body = R"({"name":"bob"})";
  auto created = http::request(req);
  ASSERT_TRUE(created) << created.error().toString();
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string bob_token = nlohmann::json::parse(created->body)["token"];
  plfm::testing::TempDir bob("vt-bob");
  ASSERT_EQ(runVt({"login", "--url", cp_->url}, bob.path(), {}, bob_token + "\n").code, 0);
  ASSERT_EQ(runVt({"orgs", "create", "bobs", "-q"}, bob.path()).code, 0);
  for (const auto& args : {std::vector<std::string>{"instances", "get", inst},
                           std::vector<std::string>{"releases", "get", release}}) {
    VtResult r = runVt(args, bob.path());
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
    // And mine do.
    EXPECT_EQ(runVt(args, config_.path()).code, 0);
  }
}

}  // namespace
}  // namespace plfm::vt
