// The agent's side of registry credentials against the real control plane:
// agent::ControlPlaneClient::registryCredentials asks as a node for one of
// its instances and gets that instance's org's credential for the registry
// its image names, or nothing (docs/specs/runtime/node-agent.md, "Images and
// registry credentials").
#include <gtest/gtest.h>

#include "agent/cp_client.h"
#include "secrets_test_support.h"

namespace plfm::cp {
namespace {

class RegistriesAgentTest : public testsupport::SecretsApiTest {};

TEST_F(RegistriesAgentTest, TheAgentGetsItsInstancesOrgCredentialOrNone) {
  const Deployed d = deployedEnv("regagent");
  ASSERT_FALSE(d.instance.empty());
  agent::ControlPlaneClient client(base_, d.node_token);
  auto none = client.registryCredentials(d.node, d.instance);
  ASSERT_TRUE(none) << none.error().toString();
  EXPECT_FALSE(none->has_value());

  auto put = callJson("PUT", "/v1/orgs/" + d.org + "/registries/registry.local",
                      {{"username", "puller"}, {"password", "agent-side-pw"}});
  ASSERT_EQ(put.status, 201) << put.raw;
  auto got = client.registryCredentials(d.node, d.instance);
  ASSERT_TRUE(got) << got.error().toString();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->registry, "registry.local");
  EXPECT_EQ((*got)->username, "puller");
  EXPECT_EQ((*got)->password, "agent-side-pw");

  // Another node's credential for this instance: nothing.
  const auto [other, other_token] = enrollNode("regagent2.node");
  agent::ControlPlaneClient stranger(base_, other_token);
  auto refused = stranger.registryCredentials(other, d.instance);
  ASSERT_TRUE(refused) << refused.error().toString();
  EXPECT_FALSE(refused->has_value());
}

}  // namespace
}  // namespace plfm::cp
