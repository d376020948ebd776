#include "config.h"

#include <gtest/gtest.h>
#include <cstdlib>

#include <fstream>

#include "plfm/testing/temp_dir.h"

namespace plfm::ingress {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  Result<Config> load(const std::string& toml) {
    const std::string path = dir_.file("ingress.toml");
    std::ofstream(path) << toml;
    Config cfg;
    PLFM_TRY(loadConfigFile(path, cfg));
    return cfg;
  }
  plfm::testing::TempDir dir_{"ingcfg"};
};

TEST_F(ConfigTest, ReadsEverySection) {
  auto cfg = load(R"(
listen = ["[::]:8443", "0.0.0.0:8443"]
metrics_listen = ["[::1]:9100"]
state_dir = "/tmp/x"
workers = 2
log_level = "debug"
[source]
kind = "edge-feed"
edge_url = "https://cp.example:8080"
edge_token_file = "/etc/plfm/edge-token"
edge_ca_file = "/etc/plfm/cp-ca.pem"
edge_unsafe_plain_http = false
edge_wait_seconds = 20
[timeouts]
client_hello_ms = 1500
connect_ms = 700
idle_ms = 60000
[limits]
max_connections = 100
connect_attempts = 2
backend_holdoff_ms = 0
backlog = 128
defer_accept = false
)");
  ASSERT_TRUE(cfg) << cfg.error().toString();
  EXPECT_EQ(cfg->listen, (std::vector<std::string>{"[::]:8443", "0.0.0.0:8443"}));
  EXPECT_EQ(cfg->metrics_listen, std::vector<std::string>{"[::1]:9100"});
  EXPECT_EQ(cfg->workers, 2);
  EXPECT_EQ(cfg->source, SourceKind::kEdgeFeed);
  EXPECT_EQ(cfg->edge_wait, std::chrono::seconds(20));
  EXPECT_EQ(cfg->edge_urls, std::vector<std::string>{"https://cp.example:8080"});
  EXPECT_EQ(cfg->edge_ca_file, "/etc/plfm/cp-ca.pem");
  EXPECT_FALSE(cfg->edge_unsafe_plain_http);
  EXPECT_EQ(cfg->client_hello_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(cfg->connect_timeout, std::chrono::milliseconds(700));
  EXPECT_EQ(cfg->idle_timeout, std::chrono::milliseconds(60000));
  EXPECT_EQ(cfg->max_connections, 100u);
  EXPECT_EQ(cfg->connect_attempts, 2);
  EXPECT_EQ(cfg->backlog, 128);
  EXPECT_FALSE(cfg->defer_accept);
  EXPECT_EQ(cfg->lastGoodFile(), "/tmp/x/last-good-routes.json");
  EXPECT_TRUE(validate(*cfg));
}

TEST_F(ConfigTest, UnknownKeysSuggestTheClosestName) {
  auto cfg = load("[timeouts]\nclient_helo_ms = 5\n");
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().message().find("ingress.toml:2:1: 'timeouts.client_helo_ms' is not a "
                                       "known setting; did you mean 'timeouts.client_hello_ms'?"),
            std::string::npos)
      << cfg.error().message();
}

TEST_F(ConfigTest, RangesAndTypesAreChecked) {
  EXPECT_FALSE(load("workers = 0\n"));
  EXPECT_FALSE(load("listen = \"[::]:443\"\n"));
  EXPECT_FALSE(load("[source]\nkind = \"ftp\"\n"));
  EXPECT_FALSE(load("[limits]\ndefer_accept = 1\n"));
  auto bad = load("listen = [\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("ingress.toml:"), std::string::npos);
}

TEST_F(ConfigTest, ValidateNeedsASourceAndGoodAddresses) {
  Config cfg;
  EXPECT_FALSE(validate(cfg));  // no routes file
  cfg.routes_file = "/tmp/routes.json";
  EXPECT_TRUE(validate(cfg));
  cfg.listen = {"localhost:443"};
  EXPECT_FALSE(validate(cfg));
  cfg.listen = {"[::1]:443"};
  cfg.source = SourceKind::kEdgeFeed;
  cfg.edge_urls = {"http://[::1]:8080"};
  EXPECT_FALSE(validate(cfg));  // no token file
  cfg.edge_token_file = "/tmp/token";
  EXPECT_TRUE(validate(cfg));
}

TEST_F(ConfigTest, EdgeUrlTakesOneUrlOrOnePerReplica) {
  auto list = load(R"([source]
kind = "edge-feed"
edge_url = ["https://cp1.example:8443", "https://cp2.example:8443,https://cp3.example:8443"]
edge_token_file = "/etc/plfm/edge-token"
)");
  ASSERT_TRUE(list) << list.error().toString();
  ASSERT_TRUE(validate(*list));
  EXPECT_EQ(list->edge_urls,
            (std::vector<std::string>{"https://cp1.example:8443", "https://cp2.example:8443",
                                      "https://cp3.example:8443"}));

  EXPECT_FALSE(load("[source]\nedge_url = [1, 2]\n"));
  auto bad = load(R"([source]
kind = "edge-feed"
edge_url = ["https://cp1.example:8443", "cp2.example:8443"]
edge_token_file = "/etc/plfm/edge-token"
)");
  ASSERT_TRUE(bad);
  auto refused = validate(*bad);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("source.edge_url"), std::string::npos)
      << refused.error().message();
  EXPECT_NE(refused.error().message().find("\"cp2.example:8443\""), std::string::npos)
      << refused.error().message();
  auto flag = validate(*bad, "--edge-url");
  ASSERT_FALSE(flag);
  EXPECT_NE(flag.error().message().find("--edge-url"), std::string::npos);
}

TEST_F(ConfigTest, EnvironmentOverridesTheFile) {
  Config cfg;
  ::setenv("PLFM_INGRESS_LISTEN", "[::1]:1,127.0.0.1:1", 1);
  ::setenv("PLFM_INGRESS_EDGE_URL", "http://[::1]:9,http://[::1]:10", 1);
  ::setenv("PLFM_INGRESS_WORKERS", "3", 1);
  auto r = applyEnv(cfg);
  ::unsetenv("PLFM_INGRESS_LISTEN");
  ::unsetenv("PLFM_INGRESS_EDGE_URL");
  ::unsetenv("PLFM_INGRESS_WORKERS");
  ASSERT_TRUE(r);
  EXPECT_EQ(cfg.listen, (std::vector<std::string>{"[::1]:1", "127.0.0.1:1"}));
  EXPECT_EQ(cfg.source, SourceKind::kEdgeFeed);
  EXPECT_EQ(cfg.edge_urls, (std::vector<std::string>{"http://[::1]:9", "http://[::1]:10"}));
  EXPECT_EQ(cfg.workers, 3);
  ::setenv("PLFM_INGRESS_WORKERS", "lots", 1);
  EXPECT_FALSE(applyEnv(cfg));
  ::unsetenv("PLFM_INGRESS_WORKERS");
}

}  // namespace
}  // namespace plfm::ingress
