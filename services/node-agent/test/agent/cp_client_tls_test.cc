// The agent's control-plane client over TLS: it enrolls with a control plane
// whose certificate its --ca signed, and refuses one it does not trust before
// any token leaves the node (docs/security.md, "Control plane: TLS").
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "agent/cp_client.h"
#include "plfm/http/http.h"
#include "plfm/http/pki.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::agent {
namespace {

class CpClientTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = http::writeLocalPki(dir_.path(), {"localhost", "::1"});
    ASSERT_TRUE(pki.has_value()) << pki.error().toString();
    pki_ = *pki;
    http::ServerOptions options{.listen = {"[::1]:0"}};
    options.tls = http::ServerTlsOptions{pki_.server_cert, pki_.server_key};
    server_ = std::make_unique<http::Server>(std::move(options), [this](http::Request& req) {
      ++requests_;
      {
        std::lock_guard lock(mu_);
        last_body_ = req.body;
        last_path_ = req.path;
        last_key_ = std::string(req.headers.get("Idempotency-Key").value_or(""));
      }
      if (req.path.find("/plan") != std::string::npos) {
        return http::Response::json(200, R"({"version":9,"instances":[],"mesh":{"version":4}})");
      }
      return http::Response::json(
          200, R"({"node_id":"nod_1","token":"nt_x","ipv6_prefix":"fd7a:5c00:0:1::/64"})");
    });
    ASSERT_TRUE(server_->start().has_value());
    url_ = "https://" + server_->endpoints().front();
  }

  plfm::testing::TempDir dir_{"agent-tls"};
  http::LocalPki pki_;
  std::unique_ptr<http::Server> server_;
  std::string url_;
  std::atomic<int> requests_{0};
  std::mutex mu_;
  std::string last_body_;  // guarded by mu_
  std::string last_path_;  // guarded by mu_
  std::string last_key_;   // guarded by mu_: the Idempotency-Key header
};

// mesh.md "Contract for key rotation": POST /v1/nodes/{id}/mesh-key with
// the public key only, and an Idempotency-Key made from the body, so a retry
// of the same report replays instead of appending again.
TEST_F(CpClientTlsTest, MeshKeyReportsCarryThePhaseThePublicKeyAndAnIdempotencyKey) {
  ControlPlaneClient c(url_, "nt_x", {.ca_file = pki_.ca_cert});
  const std::string key = "2IVfXqRw0uQ25k9EEPntx/ooq1jWchwBUXkRyLSWR2g=";
  ASSERT_TRUE(c.reportMeshKey("nod_1", "next", key, 51821));
  std::string first_key;
  {
    std::lock_guard lock(mu_);
    EXPECT_EQ(last_path_, "/v1/nodes/nod_1/mesh-key");
    EXPECT_EQ(nlohmann::json::parse(last_body_),
              nlohmann::json({{"phase", "next"}, {"public_key", key}, {"listen_port", 51821}}));
    first_key = last_key_;
    EXPECT_FALSE(first_key.empty());
  }
  ASSERT_TRUE(c.reportMeshKey("nod_1", "next", key, 51821));
  {
    std::lock_guard lock(mu_);
    EXPECT_EQ(last_key_, first_key);  // a retry: the same key
  }
  ASSERT_TRUE(c.reportMeshKey("nod_1", "current", key, 0));
  std::lock_guard lock(mu_);
  EXPECT_EQ(nlohmann::json::parse(last_body_),
            nlohmann::json({{"phase", "current"}, {"public_key", key}}));
  EXPECT_NE(last_key_, first_key);
  EXPECT_LE(last_key_.size(), 255U);
}

// mesh.md "Enrollment facts": mesh_port and role go only when they are not
// the defaults, so a control plane from before them still enrolls a
// default node; the plan's mesh section is kept as sent for the edge parse.
TEST_F(CpClientTlsTest, EnrollmentSendsMeshPortAndRoleOnlyWhenSetAndPlansKeepTheMesh) {
  ASSERT_TRUE(ControlPlaneClient::enroll(url_, "t", NodeFacts{}, {.ca_file = pki_.ca_cert}));
  {
    std::lock_guard lock(mu_);
    auto body = nlohmann::json::parse(last_body_);
    EXPECT_FALSE(body.contains("mesh_port"));
    EXPECT_FALSE(body.contains("role"));
  }
  NodeFacts edge;
  edge.mesh_port = 51821;
  edge.role = "edge";
  ASSERT_TRUE(ControlPlaneClient::enroll(url_, "t", edge, {.ca_file = pki_.ca_cert}));
  {
    std::lock_guard lock(mu_);
    auto body = nlohmann::json::parse(last_body_);
    EXPECT_EQ(body.value("mesh_port", 0), 51821);
    EXPECT_EQ(body.value("role", ""), "edge");
  }
  ControlPlaneClient c(url_, "nt_x", {.ca_file = pki_.ca_cert});
  auto plan = c.plan("nod_1", 0, std::chrono::seconds(0));
  ASSERT_TRUE(plan) << plan.error().toString();
  EXPECT_EQ(plan->mesh.value("version", 0), 4);
}

TEST_F(CpClientTlsTest, EnrollsWithTheRightCa) {
  auto cred =
      ControlPlaneClient::enroll(url_, "enroll_secret", NodeFacts{}, {.ca_file = pki_.ca_cert});
  ASSERT_TRUE(cred.has_value()) << cred.error().toString();
  EXPECT_EQ(cred->node_id, "nod_1");
  EXPECT_EQ(requests_.load(), 1);
}

TEST_F(CpClientTlsTest, RefusesAControlPlaneSignedByAnotherCa) {
  plfm::testing::TempDir other("agent-tls2");
  auto other_pki = http::writeLocalPki(other.path(), {"localhost", "::1"});
  ASSERT_TRUE(other_pki.has_value());
  auto cred = ControlPlaneClient::enroll(url_, "enroll_secret", NodeFacts{},
                                         {.ca_file = other_pki->ca_cert});
  ASSERT_FALSE(cred.has_value());
  EXPECT_NE(cred.error().message().find("not trusted"), std::string::npos)
      << cred.error().toString();
  EXPECT_EQ(cred.error().message().find("enroll_secret"), std::string::npos);
  EXPECT_EQ(requests_.load(), 0);  // the token never left
}

TEST_F(CpClientTlsTest, RefusesPlainHttpToARemoteControlPlane) {
  auto cred = ControlPlaneClient::enroll("http://192.0.2.1:9", "enroll_secret", NodeFacts{});
  ASSERT_FALSE(cred.has_value());
  EXPECT_NE(cred.error().message().find("refusing plain http://"), std::string::npos)
      << cred.error().toString();
}

}  // namespace
}  // namespace plfm::agent
