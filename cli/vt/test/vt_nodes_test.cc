// `vt nodes` end to end: the real vt binary against a real control plane on
// a real PostgreSQL, with node agents played by plain HTTP calls (enrollment
// with the token vt printed). The transcript is a golden file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <nlohmann/json.hpp>
#include <regex>

#include "plfm/testing/pg_cluster.h"
#include "vt_harness.h"

namespace plfm::vt {
namespace {

using plfm::testing::TempDir;
using testing::runVt;
using testing::Transcript;
using testing::VtResult;

class VtNodesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = plfm::testing::PgCluster::shared();
    ASSERT_TRUE(cluster) << cluster.error().toString();
    auto db = (*cluster)->createDatabase();
    ASSERT_TRUE(db) << db.error().toString();
    state_ = new TempDir("vt-nodes");
    cp_ = new testing::ControlPlaneProcess(
        testing::startControlPlane((*cluster)->conninfo(*db), *state_));
  }
  static void TearDownTestSuite() {
    delete cp_;
    delete state_;
  }

  static TempDir* state_;
  static testing::ControlPlaneProcess* cp_;
};

TempDir* VtNodesTest::state_ = nullptr;
testing::ControlPlaneProcess* VtNodesTest::cp_ = nullptr;

TEST_F(VtNodesTest, EnrollListGetCordonDrainMatchGoldenTranscript) {
  TempDir config("vt-config");
  testing::Normalizer norm;
  norm.literal(cp_->url, "<url>");
  norm.literal(config.path(), "<config>");
  Transcript t(config.path(), norm);

  ASSERT_EQ(t.run({"login", "--url", cp_->url}, cp_->admin_token + "\n").code, 0);
  EXPECT_EQ(t.run({"nodes", "list", "--format", "table"}).code, 0);
  VtResult enroll = t.run({"nodes", "enroll", "--format", "table"});
  ASSERT_EQ(enroll.code, 0) << enroll.err;
  VtResult json_enroll = t.run({"nodes", "enroll", "--ttl", "1h", "--format", "json"});
  ASSERT_EQ(json_enroll.code, 0) << json_enroll.err;
  VtResult quiet = t.run({"nodes", "enroll", "-q"});
  ASSERT_EQ(quiet.code, 0) << quiet.err;
  EXPECT_EQ(t.run({"nodes", "enroll", "--ttl", "2d"}).code, 2);

  // The agents: the table receipt's token and the JSON one.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(enroll.out, m, std::regex(R"(--enroll-token (vt_[a-z2-7]{52}))")))
      << enroll.out;
  auto n1 = testing::enrollAgent(cp_->url, m[1].str(), "n1.example");
  auto receipt = nlohmann::json::parse(json_enroll.out);
  auto n2 = testing::enrollAgent(cp_->url, receipt["result"]["token"], "n2.example");
  EXPECT_EQ(std::string(quiet.out.substr(0, 3)), "vt_");
  t.note("agents enrolled " + n1.value("node_id", "") + " and " + n2.value("node_id", ""));
  // n1 reports its mesh (the MESH column: peers_up/peers); n2 reports none ("-").
  EXPECT_EQ(
      testing::agentPost(cp_->url, n1.value("node_id", ""), n1.value("token", ""), "heartbeat",
                         {{"mesh",
                           {{"peers", 2},
                            {"peers_up", 1},
                            {"latest_handshake_at", "2026-12-06T18:00:00Z"},
                            {"rx_bytes", 1234},
                            {"tx_bytes", 5678}}}}),
      200);

  EXPECT_EQ(t.run({"nodes", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"nodes", "get", "n1.example", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"nodes", "get", n2.value("node_id", ""), "--format", "json"}).code, 0);
  EXPECT_EQ(t.run({"nodes", "cordon", "n1.example", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"nodes", "drain", "n2.example", "--format", "json"}).code, 0);
  EXPECT_EQ(t.run({"nodes", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"nodes", "uncordon", "n1.example", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"nodes", "uncordon", "n2.example", "-q"}).code, 0);
  // rotate-key: the node's key rotation is requested; get shows it rotating.
  EXPECT_EQ(t.run({"nodes", "rotate-key", "n1.example", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"nodes", "get", "n1.example", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"nodes", "get", "n3.example"}).code, 1);
  EXPECT_EQ(t.run({"nodes", "list", "--format", "json"}).code, 0);
  // rm: the node's credential is refused at once, and it leaves the list.
  EXPECT_EQ(testing::nodeHeartbeat(cp_->url, n2.value("node_id", ""), n2.value("token", "")), 200);
  EXPECT_EQ(t.run({"nodes", "rm", "n2.example", "--format", "table"}).code, 0);
  const int after =
      testing::nodeHeartbeat(cp_->url, n2.value("node_id", ""), n2.value("token", ""));
  EXPECT_EQ(after, 401);
  t.note("n2's heartbeat after rm: " + std::to_string(after));
  EXPECT_EQ(t.run({"nodes", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"nodes", "rm", "n2.example"}).code, 1);
  PLFM_EXPECT_GOLDEN("golden/nodes.txt", t.text());
}

// vt system status: the one replica leads, at epoch 1
// (docs/specs/control-plane/ha.md, "Observing it").
TEST_F(VtNodesTest, SystemStatusMatchesGoldenTranscript) {
  TempDir config("vt-config");
  testing::Normalizer norm;
  norm.literal(cp_->url, "<url>");
  norm.literal(config.path(), "<config>");
  std::array<char, 256> host{};
  ASSERT_EQ(::gethostname(host.data(), host.size() - 1), 0);
  norm.literal(std::string(host.data()) + ":" + std::to_string(cp_->proc.pid()), "<replica>");
  Transcript t(config.path(), norm);
  ASSERT_EQ(t.run({"login", "--url", cp_->url}, cp_->admin_token + "\n").code, 0);
  EXPECT_EQ(t.run({"system", "status", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"system", "status", "-q"}).code, 0);
  // The leading-since time differs on every run.
  const std::string text =
      std::regex_replace(t.text(), std::regex(R"((leading since\s+)\S.*)"), "$1<time>");
  PLFM_EXPECT_GOLDEN("golden/system.txt", text);
}

}  // namespace
}  // namespace plfm::vt
