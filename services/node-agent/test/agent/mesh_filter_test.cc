// The agent feeds the plan's cluster prefix and its --mesh-interface into the
// guest filter (mesh.md, "Isolation across hosts"): a plan-file agent with a
// stand-in nft (/bin/true: the script is written, nothing is applied) and a
// fake runtime. A plan with a mesh section turns the mesh chains on; a bad
// section leaves them as they were.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "agent/agent.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "support/fake_runtime.h"
#include "support/mesh_sections.h"

namespace plfm::agent {
namespace {
using nlohmann::json;
using namespace std::chrono_literals;

class AgentMeshFilter : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/bin/true", X_OK) != 0) GTEST_SKIP() << "no /bin/true";
    std::ofstream(dir_.file("vmlinux")) << "not a kernel";
    std::ofstream(dir_.file("initrd")) << "not an initramfs";
    AgentOptions o;
    o.state_dir = dir_.file("state");
    o.plan_file = dir_.file("plan.json");
    o.kernel = dir_.file("vmlinux");
    o.initramfs = dir_.file("initrd");
    o.scratch_mb = 8;
    o.manage_network = true;
    o.nft_binary = "/bin/true";
    o.mesh.mesh.interface = "wg-u";
    agent_ = std::make_unique<Agent>(o, std::make_unique<testing::FakeRuntime>());
  }
  void TearDown() override {
    if (agent_) agent_->stop();
  }

  void writePlan(int64_t version, const json& mesh) const {
    json plan = {{"version", version}, {"instances", json::array()}};
    if (!mesh.is_null()) plan["mesh"] = mesh;
    ASSERT_TRUE(writeFileAtomic(dir_.file("plan.json"), plan.dump()));
  }

  // Waits up to 10 s for the last ruleset the agent wrote to satisfy `pred`.
  template <class Pred>
  bool rulesetBecomes(Pred pred) const {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred(readFile(dir_.file("state/firewall/ruleset.nft")).value_or(""))) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  plfm::testing::TempDir dir_{"meshfilter"};
  std::unique_ptr<Agent> agent_;
};

// Both slots of a key rotation: --mesh-interface and the derived second name.
bool hasMesh(const std::string& s) {
  return s.find(R"(iifname { "wg-u", "wg-u1" } jump mesh_source)") != std::string::npos &&
         s.find("ip6 saddr fd7a:5c00::/48 return") != std::string::npos;
}

TEST_F(AgentMeshFilter, ThePlansClusterPrefixTurnsTheMeshChainsOn) {
  writePlan(1, nullptr);  // a control plane from before the mesh
  ASSERT_TRUE(agent_->start());
  std::this_thread::sleep_for(600ms);  // a few plan-file rounds
  EXPECT_FALSE(hasMesh(readFile(dir_.file("state/firewall/ruleset.nft")).value_or("")));

  writePlan(2, netdev::testing::meshSection(7, 1, json::array()));
  EXPECT_TRUE(rulesetBecomes(hasMesh));

  // A section refused at the edge (a host bit in the prefix) changes nothing.
  json bad = netdev::testing::meshSection(8, 1, json::array());
  bad["cluster_prefix"] = "fd7a:5c00::1/48";
  writePlan(3, bad);
  std::this_thread::sleep_for(600ms);
  EXPECT_TRUE(hasMesh(readFile(dir_.file("state/firewall/ruleset.nft")).value_or("")));
}

}  // namespace
}  // namespace plfm::agent
