// examples/hello/vt.toml stays valid under libs/manifest, and agrees with
// what the image serves: the service on hello's PORT, the check on its
// HEALTH_PORT (the defaults build-image puts in the image config).
#include <gtest/gtest.h>

#include "plfm/manifest/manifest.h"

namespace plfm::hello {
namespace {

TEST(HelloManifestTest, IsValidAndMatchesTheImage) {
  auto r = manifest::parseFile(PLFM_TEST_DIR "/vt.toml");
  for (const auto& d : r.diagnostics) ADD_FAILURE() << d.format();
  ASSERT_TRUE(r.ok());
  const manifest::Manifest& m = *r.manifest;
  EXPECT_EQ(m.app, "hello");
  ASSERT_EQ(m.processes.size(), 1U);
  EXPECT_EQ(m.processes[0].name, "web");
  ASSERT_EQ(m.services.size(), 1U);
  EXPECT_EQ(m.services[0].internal_port, 8443);
  EXPECT_EQ(m.services[0].protocol, "tls-passthrough");
  ASSERT_EQ(m.services[0].routes.size(), 2U);
  EXPECT_EQ(m.services[0].routes[0].hostname, "hello.localhost");
  EXPECT_EQ(m.services[0].routes[0].proxy_protocol, "none");
  EXPECT_EQ(m.services[0].routes[1].hostname, "hello-pp.localhost");
  EXPECT_EQ(m.services[0].routes[1].proxy_protocol, "v2");
  for (const auto& route : m.services[0].routes) EXPECT_EQ(route.port, 8443);  // the dev ingress
  ASSERT_EQ(m.checks.size(), 1U);
  EXPECT_EQ(m.checks[0].type, "http");
  EXPECT_EQ(m.checks[0].port, 8080);
  EXPECT_EQ(m.checks[0].path, "/healthz");
  EXPECT_TRUE(m.env.count("GREETING"));
  EXPECT_EQ(m.secrets, std::vector<std::string>{"HELLO_TOKEN"});
}

}  // namespace
}  // namespace plfm::hello
