// The real-PostgreSQL fixture: a server per test process, fresh databases
// from templates, and no server left behind even when the process dies.
#include "plfm/testing/pg_cluster.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "plfm/core/process.h"
#include "plfm/testing/pg_test.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::testing {
namespace {

namespace fs = std::filesystem;

class PgClusterTest : public PgTest {};

TEST_F(PgClusterTest, EachTestGetsAFreshDatabase) {
  auto conn = connect();
  ASSERT_TRUE(conn.exec("CREATE TABLE t (x int)").has_value());
  ASSERT_TRUE(conn.exec("INSERT INTO t VALUES (1)").has_value());
  auto other = cluster().createDatabase();
  ASSERT_TRUE(other.has_value());
  EXPECT_NE(*other, database());
  auto c2 = pg::Connection::connect(cluster().conninfo(*other));
  ASSERT_TRUE(c2.has_value());
  auto r = c2->exec("SELECT count(*) FROM t");
  ASSERT_FALSE(r.has_value());  // the table exists only in this test's database
}

TEST_F(PgClusterTest, ListensOnAUnixSocketOnly) {
  auto conn = connect();
  auto r = conn.exec("SHOW listen_addresses");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->text(0, 0), "");
  EXPECT_TRUE(fs::exists(cluster().socketDir() + "/.s.PGSQL.5432"));
}

TEST(PgClusterTcpTest, AlsoListensOnTcpAtTheGivenAddressWhenAsked) {
  PgClusterOptions options;
  options.tcp_listen = "127.0.0.1";
  auto c = PgCluster::start(options);
  ASSERT_TRUE(c.has_value()) << c.error().toString();
  EXPECT_TRUE(fs::exists((*c)->socketDir() + "/.s.PGSQL." + std::to_string((*c)->port())));
  auto conn = pg::Connection::connect((*c)->tcpConninfo());
  ASSERT_TRUE(conn.has_value()) << conn.error().toString();
  auto r = conn->exec("SELECT host(inet_server_addr()), current_setting('listen_addresses')");
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(r->text(0, 0), "127.0.0.1");
  EXPECT_EQ(r->text(0, 1), "127.0.0.1");
  EXPECT_EQ(std::string((*c)->tcpConninfo()).find("host=127.0.0.1 port="), 0U);
}

TEST_F(PgClusterTest, TemplatesAreBuiltOnceAndCloned) {
  int calls = 0;
  auto init = [&](pg::Connection& c) -> Result<void> {
    ++calls;
    PLFM_TRY(c.execScript("CREATE TABLE seeded (v text); INSERT INTO seeded VALUES ('hi')"));
    return ok();
  };
  ASSERT_TRUE(cluster().ensureTemplate("tmpl_seeded", init).has_value());
  ASSERT_TRUE(cluster().ensureTemplate("tmpl_seeded", init).has_value());
  EXPECT_EQ(calls, 1);
  auto db = cluster().createDatabase("tmpl_seeded");
  ASSERT_TRUE(db.has_value());
  auto c = pg::Connection::connect(cluster().conninfo(*db));
  ASSERT_TRUE(c.has_value());
  auto r = c->exec("SELECT v FROM seeded");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->text(0, 0), "hi");
}

// A child test process starts its own cluster, records where it is, then
// dies without running any cleanup. Used by the crash tests below.
TEST(PgClusterCrashHelper, StartThenDie) {
  const char* mode = std::getenv("PLFM_PG_CRASH_HELPER");
  if (mode == nullptr) GTEST_SKIP() << "helper for the crash tests";
  PgClusterOptions o;
  o.base_dir = std::getenv("PLFM_PG_CRASH_BASE");
  o.watchdog = std::string(mode) != "no-watchdog";
  auto c = PgCluster::start(o);
  ASSERT_TRUE(c.has_value()) << c.error().toString();
  ASSERT_TRUE(writeFileAtomic(std::getenv("PLFM_PG_CRASH_INFO"),
                              std::to_string((*c)->serverPid()) + "\n" + (*c)->dir())
                  .has_value());
  ::kill(::getpid(), SIGKILL);  // no destructors, no atexit
}

struct CrashInfo {
  pid_t server = 0;
  std::string dir;
};

CrashInfo runCrashingChild(const TempDir& tmp, const std::string& mode) {
  // The server may run as the postgres user, which must reach the base dir.
  std::filesystem::permissions(tmp.path(), std::filesystem::perms(0755));
  SpawnOptions o;
  o.stdout_path = tmp.file("child.log");
  o.new_session = false;
  o.env = {"PLFM_PG_CRASH_HELPER=" + mode, "PLFM_PG_CRASH_BASE=" + tmp.file("base"),
           "PLFM_PG_CRASH_INFO=" + tmp.file("info")};
  auto p = spawn({"/proc/self/exe", "--gtest_filter=PgClusterCrashHelper.*"}, o);
  EXPECT_TRUE(p.has_value());
  if (!p) return {};
  const int st = p->wait();
  EXPECT_EQ(describeWaitStatus(st), "killed by signal 9") << tailFile(tmp.file("child.log"), 30);
  auto info = readFile(tmp.file("info"));
  EXPECT_TRUE(info.has_value()) << tailFile(tmp.file("child.log"), 30);
  if (!info) return {};
  CrashInfo ci;
  ci.server = static_cast<pid_t>(std::atoi(info->c_str()));
  ci.dir = info->substr(info->find('\n') + 1);
  return ci;
}

bool eventually(const std::function<bool()>& cond, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cond();
}

TEST(PgClusterCrashTest, WatchdogStopsTheServerWhenTheTestProcessIsKilled) {
  TempDir tmp("plfm-crash");
  CrashInfo ci = runCrashingChild(tmp, "watchdog");
  ASSERT_GT(ci.server, 0);
  EXPECT_TRUE(eventually([&] { return !processAlive(ci.server); }, std::chrono::seconds(15)))
      << "postgres " << ci.server << " outlived its test process";
  EXPECT_TRUE(eventually([&] { return !fs::exists(ci.dir); }, std::chrono::seconds(5)))
      << ci.dir << " was not removed";
}

TEST(PgClusterCrashTest, NextStartReapsLeftoversOfADeadOwner) {
  TempDir tmp("plfm-reap");
  CrashInfo ci = runCrashingChild(tmp, "no-watchdog");
  ASSERT_GT(ci.server, 0);
  // Without a watchdog the server is orphaned, as after a kernel OOM kill of
  // both the test and its watchdog.
  ASSERT_TRUE(processAlive(ci.server));
  ASSERT_TRUE(fs::exists(ci.dir));
  EXPECT_EQ(PgCluster::reapLeftovers(tmp.file("base")), 1);
  EXPECT_FALSE(processAlive(ci.server));
  EXPECT_FALSE(fs::exists(ci.dir));
  EXPECT_EQ(PgCluster::reapLeftovers(tmp.file("base")), 0);
}

TEST(PgClusterCrashTest, ReaperLeavesLiveClustersAlone) {
  auto shared = PgCluster::shared();
  ASSERT_TRUE(shared.has_value());
  PgCluster::reapLeftovers(PgCluster::defaultBaseDir());
  EXPECT_TRUE(processAlive((*shared)->serverPid()));
  EXPECT_TRUE(fs::exists((*shared)->dir()));
}

}  // namespace
}  // namespace plfm::testing
