// vt dev's bookkeeping without starting anything: pid files that survive pid
// reuse, settings round trips, the state-dir sweeps, and the failure report
// when a binary is missing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "dev_platform.h"
#include "dev_process.h"
#include "plfm/core/process.h"
#include "plfm/core/sha256.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::vt::dev {
namespace {

TEST(VtDevPidFile, NamesALiveProcessOnlyWithItsStartTime) {
  plfm::testing::TempDir dir("vdpid");
  ASSERT_TRUE(writePidFile(dir.file("self.pid"), ::getpid()));
  EXPECT_EQ(readPidFile(dir.file("self.pid")), ::getpid());
  // The same pid with another start time is a recycled pid: not ours.
  ASSERT_TRUE(writeFileAtomic(dir.file("reused.pid"), std::to_string(::getpid()) + " 1\n"));
  EXPECT_EQ(readPidFile(dir.file("reused.pid")), -1);
  ASSERT_TRUE(writeFileAtomic(dir.file("junk.pid"), "not a pid\n"));
  EXPECT_EQ(readPidFile(dir.file("junk.pid")), -1);
  EXPECT_EQ(readPidFile(dir.file("missing.pid")), -1);
}

TEST(VtDevProcess, AncestorsAndLiveness) {
  EXPECT_TRUE(isAncestor(::getpid()));
  EXPECT_TRUE(isAncestor(::getppid()));
  EXPECT_TRUE(isRunning(::getpid()));
  EXPECT_FALSE(isRunning(-1));
  EXPECT_GT(processStartTime(::getpid()), 0U);
}

TEST(VtDevProcess, StopProcessStopsAChild) {
  auto p = spawn({"sleep", "30"});
  ASSERT_TRUE(p);
  const pid_t pid = p->pid();
  EXPECT_TRUE(isRunning(pid));
  // The child stays a zombie until reaped: isRunning says it is gone.
  EXPECT_TRUE(stopProcess(pid, SIGTERM, std::chrono::seconds(5)));
  EXPECT_FALSE(isRunning(pid));
}

TEST(VtDevSettings, RoundTripAndDefaults) {
  plfm::testing::TempDir dir("vdset");
  auto fresh = loadSettings(dir.path());
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->control_plane_port, 8080);
  EXPECT_EQ(fresh->ingress_port, 8443);
  EXPECT_EQ(fresh->controlPlaneUrl(), "https://[::1]:8080");
  fresh->ingress_port = 9443;
  fresh->registry_port = 5001;
  fresh->accel = "tcg";
  ASSERT_TRUE(saveSettings(*fresh));
  auto again = loadSettings(dir.path());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->ingress_port, 9443);
  EXPECT_EQ(again->registryHost(), "127.0.0.1:5001");
  EXPECT_EQ(again->accel, "tcg");
  EXPECT_EQ(again->nodes, 1);
  again->nodes = 3;
  ASSERT_TRUE(saveSettings(*again));
  auto multi = loadSettings(dir.path());
  ASSERT_TRUE(multi);
  EXPECT_EQ(multi->nodes, 3);
  // Image references must name it the same way from every host.
  EXPECT_EQ(multi->registryHost(), "198.18.0.10:5001");
  EXPECT_EQ(multi->controlPlaneNodeUrls(true),
            std::vector<std::string>{"https://[fd00:5c::a]:8081"});
  EXPECT_FALSE(multi->ha);
  multi->ha = true;
  multi->pg_port = 6000;
  multi->control_plane_2_port = 9082;
  ASSERT_TRUE(saveSettings(*multi));
  auto ha = loadSettings(dir.path());
  ASSERT_TRUE(ha);
  EXPECT_TRUE(ha->ha);
  EXPECT_EQ(ha->pg_port, 6000);
  EXPECT_EQ(ha->replicas(), 2);
  EXPECT_EQ(ha->controlPlaneUrls(),
            (std::vector<std::string>{"https://[::1]:8080", "https://[::1]:9082"}));
  EXPECT_EQ(ha->controlPlaneNodeUrls(true),
            (std::vector<std::string>{"https://[fd00:5c::a]:8081", "https://[fd00:5c::a]:8083"}));
  ASSERT_TRUE(writeFileAtomic(dir.file("dev.json"), "[1]"));
  EXPECT_FALSE(loadSettings(dir.path()));
}

TEST(VtDevControlPlane, PassesTheUsersConfigFileWhenThereIsOne) {
  plfm::testing::TempDir dir("vdcfg");
  Settings s;
  s.state_dir = dir.path();
  http::LocalPki pki;
  pki.server_cert = "cert.pem";
  pki.server_key = "key.pem";
  auto argv = controlPlaneArgv("cp", s, "host=/run", pki);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "--config"), 0);
  EXPECT_EQ(argv[1], "serve");
  std::filesystem::create_directories(dir.file("control-plane"));
  ASSERT_TRUE(writeFileAtomic(dir.file("control-plane/config.toml"), "drain_grace_ms = 0\n"));
  argv = controlPlaneArgv("cp", s, "host=/run", pki);
  auto at = std::find(argv.begin(), argv.end(), "--config");
  ASSERT_NE(at, argv.end());
  ASSERT_NE(at + 1, argv.end());
  EXPECT_EQ(*(at + 1), dir.file("control-plane/config.toml"));
  EXPECT_NE(std::find(argv.begin(), argv.end(), "--tls-key"), argv.end());
}

TEST(VtDevControlPlane, SeveralHostsGetShortLivenessTimeoutsUnlessTheUserHasAConfig) {
  plfm::testing::TempDir dir("vdmulti");
  Settings s;
  s.state_dir = dir.path();
  s.nodes = 3;
  const http::LocalPki pki;
  std::filesystem::create_directories(dir.file("control-plane"));
  ASSERT_TRUE(writeFileAtomic(dir.file("control-plane/multi-host.toml"), "x = 1\n"));
  auto argv = controlPlaneArgv("cp", s, "host=/run", pki);
  auto at = std::find(argv.begin(), argv.end(), "--config");
  ASSERT_NE(at, argv.end());
  EXPECT_EQ(*(at + 1), dir.file("control-plane/multi-host.toml"));
  s.nodes = 1;  // one host: the file is not for it
  argv = controlPlaneArgv("cp", s, "host=/run", pki);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "--config"), 0);
  s.nodes = 3;  // the user's own wins
  ASSERT_TRUE(writeFileAtomic(dir.file("control-plane/config.toml"), "drain_grace_ms = 0\n"));
  argv = controlPlaneArgv("cp", s, "host=/run", pki);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "--config"), 1);
  at = std::find(argv.begin(), argv.end(), "--config");
  EXPECT_EQ(*(at + 1), dir.file("control-plane/config.toml"));
}

TEST(VtDevControlPlane, ListensForNodesOnHostAsUnderlayWithSeveralHosts) {
  Settings s;
  s.state_dir = "/tmp/x";
  s.control_plane_node_port = 9081;
  const http::LocalPki pki;
  auto argv = controlPlaneArgv("cp", s, "host=/run", pki);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "--node-listen"), 1);
  s.nodes = 3;
  argv = controlPlaneArgv("cp", s, "host=/run", pki);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), "--node-listen"), 2);
  EXPECT_NE(std::find(argv.begin(), argv.end(), "[fd00:5c::a]:9081"), argv.end());
}

TEST(VtDevControlPlane, TheSecondReplicaHasItsOwnListenersAndTheSameStateDir) {
  Settings s;
  s.state_dir = "/tmp/x";
  s.ha = true;
  s.nodes = 2;
  const http::LocalPki pki;
  const auto argv = controlPlaneArgv("cp", s, "host=a,b", pki, 1);
  EXPECT_NE(std::find(argv.begin(), argv.end(), "[::1]:8082"), argv.end());
  EXPECT_NE(std::find(argv.begin(), argv.end(), "[::1]:8083"), argv.end());
  EXPECT_NE(std::find(argv.begin(), argv.end(), "[fd00:5c::a]:8083"), argv.end());
  EXPECT_EQ(std::find(argv.begin(), argv.end(), "[::1]:8080"), argv.end());
  EXPECT_NE(std::find(argv.begin(), argv.end(), "/tmp/x/control-plane"), argv.end());
  EXPECT_EQ(controlPlaneComponent(0), "control-plane");
  EXPECT_EQ(controlPlaneComponent(1), "control-plane-2");
}

TEST(VtDevFormation, PortsPathsAndTheControlPlanesDatabaseSetting) {
  const Formation f("/tmp/st", 6000, "/usr/lib/postgresql/15/bin");
  EXPECT_EQ(f.port(0), 6001);
  EXPECT_EQ(f.port(1), 6002);
  EXPECT_EQ(f.address(Formation::kMonitor), "127.0.0.1:6000");
  // As root, PostgreSQL runs as postgres, which cannot reach a state dir
  // under a 0700 home: the formation lives in postgres's home then.
  if (runsPostgresAsPostgres()) {
    EXPECT_TRUE(f.root().ends_with("/plfm-dev/" + Sha256::hex("/tmp/st").substr(0, 16)))
        << f.root();
  } else {
    EXPECT_EQ(f.root(), "/tmp/st/postgres");
  }
  EXPECT_EQ(formationRoot("/tmp/st"), f.root());
  EXPECT_NE(formationRoot("/tmp/st2"), f.root());
  EXPECT_EQ(f.pgdata(Formation::kMonitor), f.root() + "/monitor");
  EXPECT_EQ(f.pgdata(1), f.root() + "/b");
  const std::string ci = f.conninfo();
  EXPECT_NE(ci.find("host=127.0.0.1,127.0.0.1 port=6001,6002"), std::string::npos) << ci;
  EXPECT_NE(ci.find("dbname=plfm"), std::string::npos) << ci;
  EXPECT_NE(ci.find("target_session_attrs=read-write"), std::string::npos) << ci;
  EXPECT_EQ(Formation::nodeOf("pg-monitor"), Formation::kMonitor);
  EXPECT_EQ(Formation::nodeOf("pg-b"), 1);
  EXPECT_EQ(Formation::nodeOf("postgres"), -2);
  // pg_autoctl's config lives in the state dir, not in a home directory.
  const auto env = f.autoctlEnv();
  EXPECT_NE(std::find(env.begin(), env.end(), "XDG_CONFIG_HOME=" + f.root() + "/autoctl/config"),
            env.end());
  // pg_autoctl runs with its own environment only, its sockets in ROOT.
  const auto argv = f.autoctl({"show", "state"});
  const auto env_i = std::find(argv.begin(), argv.end(), "-i");
  ASSERT_NE(env_i, argv.end());
  EXPECT_EQ(*(env_i - 1), "/usr/bin/env");
  EXPECT_NE(std::find(argv.begin(), argv.end(), "PG_REGRESS_SOCK_DIR=" + f.socketDir()),
            argv.end());
  EXPECT_EQ(argv.back(), "state");
  // ROOT is made and removed as the formation's user, never by root itself.
  for (const auto& a : f.prepareRootArgvs()) {
    EXPECT_EQ(a[0], runsPostgresAsPostgres() ? "setpriv" : a[0]);
  }
  EXPECT_EQ(f.removeArgv(f.root()).back(), f.root());
  // A data node is created with the replication quorum on (synchronous).
  const auto create = f.createNodeArgv(1);
  auto q = std::find(create.begin(), create.end(), "--replication-quorum");
  ASSERT_NE(q, create.end());
  EXPECT_EQ(*(q + 1), "true");
  EXPECT_NE(std::find(create.begin(), create.end(),
                      "postgres://autoctl_node@127.0.0.1:6000/"
                      "pg_auto_failover?sslmode=disable"),
            create.end());
  // ADR 0020's values, one statement each (ALTER SYSTEM refuses a block).
  const auto sql = Formation::monitorTimeoutsSql();
  EXPECT_NE(std::find(sql.begin(), sql.end(),
                      "ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 5000"),
            sql.end());
}

TEST(VtDevFormation, StatesFromTheMonitor) {
  auto nodes = parseFormationNodes("a|primary|primary|1\nb|secondary|secondary|1\n");
  ASSERT_EQ(nodes.size(), 2U);
  EXPECT_EQ(nodes[1].name, "b");
  EXPECT_TRUE(nodes[1].healthy);
  EXPECT_EQ(formationPrimary(nodes), "a");
  EXPECT_TRUE(formationHealthy(nodes));
  // A failover under way: b promoted, a not yet back.
  nodes = parseFormationNodes("a|primary|demoted|0\nb|wait_primary|wait_primary|1\n");
  EXPECT_EQ(formationPrimary(nodes), "b");
  EXPECT_FALSE(nodes[0].healthy);
  EXPECT_FALSE(formationHealthy(nodes));
  // The first node alone; junk lines are skipped.
  nodes = parseFormationNodes("a|single|single|1\nnot a row\n");
  ASSERT_EQ(nodes.size(), 1U);
  EXPECT_EQ(formationPrimary(nodes), "a");
  EXPECT_FALSE(formationHealthy(nodes));
  EXPECT_TRUE(parseFormationNodes("").empty());
}

TEST(VtDevHosts, NamesDeriveFromTheStateDirAndFitTheKernelsLimits) {
  const Hosts one("/tmp/state-one", 3);
  const Hosts two("/tmp/state-two", 3);
  EXPECT_EQ(one.tag().size(), 8U);
  EXPECT_NE(one.tag(), two.tag());
  EXPECT_EQ(one.tag(), Hosts("/tmp/state-one", 1).tag());
  EXPECT_EQ(one.underlayNetns(), "plfm-" + one.tag() + "-ul");
  ASSERT_EQ(one.all().size(), 3U);
  const Host& a = one.all()[0];
  EXPECT_EQ(a.netns, "");  // vt dev's own namespace
  EXPECT_EQ(a.underlay, "fd00:5c::a");
  EXPECT_EQ(a.underlay4, "198.18.0.10");
  EXPECT_EQ(a.component, "node-agent");
  const Host& c = one.all()[2];
  EXPECT_EQ(c.netns, "plfm-" + one.tag() + "-c");
  EXPECT_EQ(c.underlay, "fd00:5c::c");
  EXPECT_EQ(c.mesh_interface, "wg-" + one.tag() + "-c");
  EXPECT_EQ(c.component, "node-agent-c");
  const Hosts eight("/tmp/state-one", kMaxNodes);
  EXPECT_EQ(eight.all().back().underlay, "fd00:5c::11");
  EXPECT_EQ(Hosts("/tmp/x", 99).all().size(), static_cast<size_t>(kMaxNodes));
  for (const Host& h : eight.all()) {
    EXPECT_LE(h.mesh_interface.size(), 15U) << h.mesh_interface;  // IFNAMSIZ - 1
  }
  EXPECT_LE(eight.underlayInterface().size(), 15U);
  // Commands run in a host's namespace by nsenter (the mounts stay ours).
  const auto argv = inHost(c, {"ip", "link"});
  ASSERT_EQ(argv.size(), 5U);
  EXPECT_EQ(argv[0], "nsenter");
  EXPECT_EQ(argv[1], "--net=/run/netns/" + c.netns);
  EXPECT_EQ(inHost(a, {"ip", "link"}).size(), 2U);
  EXPECT_EQ(nodeHostAddress("fd7a:5c00:0:1::/64"), "fd7a:5c00:0:1::1/128");
  EXPECT_EQ(nodeHostAddress("fd7a:5c00:0:1::/48"), "");
  EXPECT_EQ(nodeHostAddress("not an address/64"), "");
}

TEST(VtDevSweep, FindsSocketsUnderADir) {
  plfm::testing::TempDir dir("vdsock");
  EXPECT_TRUE(socketsUnder(dir.path()).empty());
  EXPECT_TRUE(mountsUnder(dir.path()).empty());
  EXPECT_TRUE(processesMentioning(dir.path() + "/nothing-runs-here").empty());
}

TEST(VtDevBinaries, AMissingBinaryIsNamedWithItsVariable) {
  ::setenv("PLFM_INGRESS_BIN", "/nonexistent/plfm-ingress", 1);
  auto b = findBinaries("");
  ::unsetenv("PLFM_INGRESS_BIN");
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message().find("plfm-ingress (PLFM_INGRESS_BIN)"), std::string::npos)
      << b.error().message();
}

TEST(VtDevStatus, JsonNamesEveryComponent) {
  Settings s;
  s.state_dir = "/tmp/x";
  PlatformStatus st;
  for (const auto& n : componentNames()) {
    st.components.push_back({.name = n, .pid = -1, .address = "a", .health = "stopped", .log = ""});
  }
  auto j = toJson(s, st);
  ASSERT_EQ(j["components"].size(), 5U);
  EXPECT_EQ(j["components"][0]["name"], "postgres");
  EXPECT_TRUE(j["components"][0]["pid"].is_null());
  EXPECT_TRUE(j["instances"].is_null());
  EXPECT_EQ(j["control_plane_url"], "https://[::1]:8080");
  EXPECT_EQ(j["nodes"], 1);
  EXPECT_TRUE(j["hosts"].empty());
  EXPECT_EQ(j["ha"], false);
  EXPECT_TRUE(j["formation"].is_null());
  s.ha = true;
  st.formation = parseFormationNodes("a|primary|primary|1\nb|secondary|secondary|0\n");
  j = toJson(s, st);
  ASSERT_EQ(j["formation"].size(), 2U);
  EXPECT_EQ(j["formation"][1]["node"], "b");
  EXPECT_EQ(j["formation"][1]["healthy"], false);
  EXPECT_EQ(j["control_plane_urls"].size(), 2U);
}

}  // namespace
}  // namespace plfm::vt::dev
