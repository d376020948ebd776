#include "config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "plfm/testing/temp_dir.h"

namespace plfm::cp {
namespace {

std::string writeToml(const plfm::testing::TempDir& dir, const std::string& text) {
  std::string path = dir.file("cp.toml");
  std::ofstream(path) << text;
  return path;
}

TEST(ConfigTest, FileOverridesDefaults) {
  plfm::testing::TempDir dir("plfm-cfg");
  Config cfg;
  auto r = loadConfigFile(writeToml(dir, R"(listen = ["[::1]:9000", "127.0.0.1:9000"]
database = "host=/tmp dbname=x"
state_dir = "/var/lib/x"
read_your_writes_wait_ms = 500
db_pool_size = 4
)"),
                          cfg);
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(cfg.listen, (std::vector<std::string>{"[::1]:9000", "127.0.0.1:9000"}));
  EXPECT_EQ(cfg.database, "host=/tmp dbname=x");
  EXPECT_EQ(cfg.read_your_writes_wait, std::chrono::milliseconds(500));
  EXPECT_EQ(cfg.db_pool_size, 4);
  EXPECT_EQ(cfg.adminTokenFile(), "/var/lib/x/admin-token");
  EXPECT_TRUE(validate(cfg).has_value());
}

TEST(ConfigTest, UnknownKeyNamesFileLineAndKey) {
  plfm::testing::TempDir dir("plfm-cfg");
  Config cfg;
  const std::string path = writeToml(dir, "listen = [\"[::1]:1\"]\ndatabse = \"x\"\n");
  auto r = loadConfigFile(path, cfg);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find(path + ":2:1: 'databse' is not a known setting; did you "
                                            "mean 'database'?"),
            std::string::npos)
      << r.error().message();
  EXPECT_EQ(r.error().detail("field"), "databse");
}

TEST(ConfigTest, WrongTypesAndRangesAreRefused) {
  plfm::testing::TempDir dir("plfm-cfg");
  Config cfg;
  auto r = loadConfigFile(writeToml(dir, "db_pool_size = 0\n"), cfg);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("'db_pool_size' must be an integer 1..1000"),
            std::string::npos);
  r = loadConfigFile(writeToml(dir, "database = 5\n"), cfg);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("'database' must be a string"), std::string::npos);
  r = loadConfigFile(writeToml(dir, "listen = [\n"), cfg);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find(dir.file("cp.toml") + ":"), std::string::npos);
}

TEST(ConfigTest, SchedulerAndNodeSettings) {
  plfm::testing::TempDir dir("plfm-cfg");
  Config cfg;
  auto r = loadConfigFile(writeToml(dir, R"(cluster_ipv6_prefix = "fd00:1::/48"
scheduler_enabled = false
scheduler_interval_ms = 500
heartbeat_interval_seconds = 5
heartbeat_timeout_seconds = 20
node_down_after_seconds = 0
mesh_key_max_age_days = 0
unreachable_grace_seconds = 90
cpu_overcommit = 2
restart_backoff_base_ms = 500
restart_backoff_max_ms = 30000
max_deploy_failures = 5
)"),
                          cfg);
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(cfg.cluster_ipv6_prefix, "fd00:1::/48");
  EXPECT_FALSE(cfg.scheduler_enabled);
  EXPECT_EQ(cfg.scheduler_interval, std::chrono::milliseconds(500));
  EXPECT_EQ(cfg.heartbeat_timeout, std::chrono::seconds(20));
  EXPECT_EQ(cfg.node_down_after, std::chrono::seconds(0));
  EXPECT_EQ(cfg.mesh_key_max_age_days, 0);
  EXPECT_EQ(Config().mesh_key_max_age_days, 30);
  EXPECT_EQ(cfg.unreachable_grace, std::chrono::seconds(90));
  EXPECT_EQ(cfg.cpu_overcommit, 2);
  EXPECT_EQ(cfg.max_deploy_failures, 5);
  EXPECT_TRUE(validate(cfg).has_value());

  // A prefix nodes cannot take /64s from, a timeout shorter than the
  // interval, a typo: each names its setting.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"cluster_ipv6_prefix = \"fd00::/64\"\n", "cluster_ipv6_prefix"},
      {"cluster_ipv6_prefix = \"fd00::1/48\"\n", "cluster_ipv6_prefix"},
      {"heartbeat_timeout_seconds = 10\n", "heartbeat_timeout_seconds"},
      {"restart_backoff_max_ms = 10\n", "restart_backoff_max_ms"},
  };
  for (const auto& [text, field] : bad) {
    Config c;
    ASSERT_TRUE(loadConfigFile(writeToml(dir, text), c).has_value()) << text;
    auto v = validate(c);
    ASSERT_FALSE(v.has_value()) << text;
    EXPECT_EQ(v.error().detail("field"), field) << v.error().message();
  }
  r = loadConfigFile(writeToml(dir, "heartbeat_timout_seconds = 5\n"), cfg);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("did you mean 'heartbeat_timeout_seconds'?"),
            std::string::npos)
      << r.error().message();
  r = loadConfigFile(writeToml(dir, "scheduler_enabled = \"yes\"\n"), cfg);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("must be true or false"), std::string::npos);
}

TEST(ConfigTest, QuotaDefaultsComeFromTheFileWithSaneDefaults) {
  plfm::testing::TempDir dir("plfm-cfg");
  Config cfg;
  EXPECT_EQ(cfg.quotas[Quota::kInstances], 50);
  EXPECT_EQ(cfg.quotas[Quota::kSecretsBytes], 1 << 20);
  auto r = loadConfigFile(writeToml(dir, "quota_instances = 10\nquota_secrets_bytes = 0\n"), cfg);
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(cfg.quotas[Quota::kInstances], 10);
  EXPECT_EQ(cfg.quotas[Quota::kSecretsBytes], 0);
  EXPECT_EQ(cfg.quotas[Quota::kRoutes], 100);
  for (const char* bad :
       {"quota_routes = -1\n", "quota_routes = \"5\"\n", "quota_routes = 2000000000000\n"}) {
    Config c;
    r = loadConfigFile(writeToml(dir, bad), c);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().detail("field"), "quota_routes") << r.error().message();
  }
  r = loadConfigFile(writeToml(dir, "quota_route = 5\n"), cfg);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("did you mean 'quota_routes'?"), std::string::npos)
      << r.error().message();
}

TEST(ConfigTest, EnvironmentOverridesFile) {
  Config cfg;
  ::setenv("PLFM_CP_LISTEN", "[::1]:1,127.0.0.1:2", 1);
  ::setenv("PLFM_CP_LOG_LEVEL", "debug", 1);
  ASSERT_TRUE(applyEnv(cfg).has_value());
  ::unsetenv("PLFM_CP_LISTEN");
  ::unsetenv("PLFM_CP_LOG_LEVEL");
  EXPECT_EQ(cfg.listen, (std::vector<std::string>{"[::1]:1", "127.0.0.1:2"}));
  EXPECT_EQ(cfg.log_level, "debug");
  cfg.log_level = "loud";
  auto v = validate(cfg);
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().detail("field"), "log_level");
}

}  // namespace
}  // namespace plfm::cp

namespace plfm::cp {
namespace {

TEST(ConfigTest, PlainHttpOnlyOnLoopbackUnlessUnsafe) {
  Config cfg;
  cfg.listen = {"[::1]:8080", "unix:/run/plfm/cp.sock", "127.0.0.1:8080"};
  EXPECT_TRUE(validate(cfg).has_value());

  cfg.listen = {"[::1]:8080", "[::]:8080"};
  auto v = validate(cfg);
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().detail("field"), "listen");
  EXPECT_NE(v.error().message().find("refusing to serve plain HTTP on [::]:8080"),
            std::string::npos)
      << v.error().message();
  EXPECT_NE(v.error().message().find("--unsafe-plain-http"), std::string::npos);

  cfg.unsafe_plain_http = true;
  EXPECT_TRUE(validate(cfg).has_value());

  cfg.unsafe_plain_http = false;
  cfg.tls_cert_file = "/etc/plfm/cp.pem";
  v = validate(cfg);  // a certificate without a key
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().detail("field"), "tls_key_file");
  cfg.tls_key_file = "/etc/plfm/cp-key.pem";
  EXPECT_TRUE(validate(cfg).has_value());
}

TEST(ConfigTest, NodeListenerAndConnectionLimits) {
  plfm::testing::TempDir dir("plfm-cfg");
  Config cfg;
  EXPECT_TRUE(cfg.node_listen.empty());
  EXPECT_EQ(cfg.max_connections_per_source, 64U);
  auto r = loadConfigFile(writeToml(dir, R"(node_listen = ["[::1]:8081"]
max_connections = 1000
max_connections_per_source = 0
ipv6_source_prefix = 64
node_db_pool_size = 6
auth_db_pool_size = 2
)"),
                          cfg);
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(cfg.node_listen, (std::vector<std::string>{"[::1]:8081"}));
  EXPECT_EQ(cfg.max_connections, 1000U);
  EXPECT_EQ(cfg.max_connections_per_source, 0U);
  EXPECT_EQ(cfg.ipv6_source_prefix, 64);
  EXPECT_EQ(cfg.node_db_pool_size, 6);
  EXPECT_EQ(cfg.auth_db_pool_size, 2);
  EXPECT_TRUE(validate(cfg).has_value());
  r = loadConfigFile(writeToml(dir, "ipv6_source_prefix = 8\n"), cfg);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("'ipv6_source_prefix' must be an integer 32..128"),
            std::string::npos);

  // The node listener is held to the same plain-HTTP rule, and named.
  cfg.node_listen = {"[::]:8081"};
  auto v = validate(cfg);
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().detail("field"), "node_listen");
  setenv("PLFM_CP_NODE_LISTEN", "[::1]:7001,127.0.0.1:7001", 1);
  ASSERT_TRUE(applyEnv(cfg).has_value());
  unsetenv("PLFM_CP_NODE_LISTEN");
  EXPECT_EQ(cfg.node_listen, (std::vector<std::string>{"[::1]:7001", "127.0.0.1:7001"}));
}

// Domain verification's resolver (docs/specs/ingress/domains.md): an IPv4
// address with an optional port, checked at startup, never a name to resolve.
TEST(ConfigTest, DnsResolverIsAnIpv4AddressAndPort) {
  Config cfg;
  for (const char* good : {"127.0.0.1:5353", "10.0.0.53", "192.0.2.1:53"}) {
    cfg.dns_resolver = good;
    EXPECT_TRUE(validate(cfg).has_value()) << good;
  }
  for (const char* bad : {"localhost:53", "[::1]:53", "127.0.0.1:0", "127.0.0.1:99999",
                          "127.0.0.1:", "1.2.3.4.5", "127.0.0.1:53x", " 127.0.0.1"}) {
    cfg.dns_resolver = bad;
    auto v = validate(cfg);
    ASSERT_FALSE(v.has_value()) << bad;
    EXPECT_EQ(v.error().detail("field"), "dns_resolver") << bad;
  }
}

TEST(ConfigTest, TlsSettingsFromFileAndEnvironment) {
  plfm::testing::TempDir dir("plfm-cfg");
  Config cfg;
  auto r = loadConfigFile(writeToml(dir,
                                    "tls_cert_file = \"/c.pem\"\ntls_key_file = \"/k.pem\"\n"
                                    "unsafe_plain_http = true\n"),
                          cfg);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(cfg.tls_cert_file, "/c.pem");
  EXPECT_EQ(cfg.tls_key_file, "/k.pem");
  EXPECT_TRUE(cfg.unsafe_plain_http);

  Config env_cfg;
  ::setenv("PLFM_CP_TLS_CERT_FILE", "/e.pem", 1);
  ::setenv("PLFM_CP_UNSAFE_PLAIN_HTTP", "maybe", 1);
  auto applied = applyEnv(env_cfg);
  ::unsetenv("PLFM_CP_TLS_CERT_FILE");
  ::unsetenv("PLFM_CP_UNSAFE_PLAIN_HTTP");
  ASSERT_FALSE(applied.has_value());
  EXPECT_EQ(env_cfg.tls_cert_file, "/e.pem");
}

}  // namespace
}  // namespace plfm::cp
