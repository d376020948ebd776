// A leader replica cut off from PostgreSQL by a real network partition
// (docs/specs/control-plane/ha.md, "Noticing a lost lock"; issue 22).
//
// PostgreSQL listens on TCP at the host end of a veth pair; replica A runs
// in a network namespace of its own (the other end), replica B in the
// test's namespace, both reaching the database over TCP, so the lock
// session gets its keepalives and tcp_user_timeout. While scale changes run
// through B, nftables rules in A's namespace drop (not reject) every packet
// between A and PostgreSQL: A must notice by itself. Checked: A says it lost
// the leadership within 10 s, B takes over with a new epoch and schedules
// the next change, and once the rules go A does not lead or schedule again
// and no slot is placed twice. Late writes of A refused by the epoch check
// are counted and printed, not required (usually none reaches the database);
// the refusal itself is SchedulerTest.ADeposedLeadersWritesFailTheEpochCheck.
//
// The namespace is held by a child that dies with the test process
// (PR_SET_PDEATHSIG), which takes the veth pair with it; a start also
// removes host ends left by test processes that are gone. The nftables
// table lives inside the namespace. Needs root; skips otherwise.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "ha_fixture.h"

namespace plfm::cp {
namespace {

using namespace std::chrono_literals;
using testsupport::Replica;

// Host ends are named kLinkPrefix + the test process's pid (15 bytes at most).
constexpr std::string_view kLinkPrefix = "plfmpt";

// Counts `needle` in `text` from `from` on.
size_t countFrom(const std::string& text, std::string_view needle, size_t from = 0) {
  size_t n = 0;
  for (size_t at = text.find(needle, from); at != std::string::npos;
       at = text.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// Runs argv; its output goes to `out` (for the error).
Result<void> run(const std::vector<std::string>& argv, const std::string& out) {
  SpawnOptions so;
  so.stdout_path = out;
  so.timeout = 20s;
  return runChecked(argv, so);
}

// Removes the host ends of veth pairs whose test process is gone (the pair
// outlives its holder while a replica still runs in the namespace).
void reapLinks(const std::string& out) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/class/net", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(kLinkPrefix)) continue;
    const pid_t pid = std::atoi(name.c_str() + kLinkPrefix.size());
    if (pid > 0 && !processAlive(pid)) (void)run({"ip", "link", "del", name}, out);
  }
}

class HaPartitionTest : public testsupport::HaFixture {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (a network namespace, a veth pair, nft)";
    if (::access("/usr/sbin/nft", X_OK) != 0) GTEST_SKIP() << "nft is not installed";
    net_dir_ = std::make_unique<plfm::testing::TempDir>("cp-part");
    net_log_ = net_dir_->file("net.log");
    reapLinks(net_log_);
    if (auto r = makeNamespace(); !r) {
      GTEST_SKIP() << "cannot make a network namespace here: " << r.error().toString();
    }
    auto wired = wire();
    ASSERT_TRUE(wired.has_value()) << wired.error().toString();
    testing::PgClusterOptions options;
    options.tcp_listen = host_;
    options.tcp_trust = {prefix_ + "/64"};
    auto c = testing::PgCluster::start(options);
    ASSERT_TRUE(c.has_value()) << c.error().toString();
    cluster_ = std::move(*c);
    // A in the namespace, B outside; both over TCP. A starts first and leads.
    replicas_[0].wrap = {"nsenter", "--net=/proc/" + std::to_string(holder_) + "/ns/net"};
    replicas_[0].listen = "[" + guest_ + "]:0";
    replicas_[0].flags = {"--unsafe-plain-http"};  // on a veth only the test reaches
    HaFixture::SetUp();
  }

  void TearDown() override {
    HaFixture::TearDown();
    cluster_.reset();
    if (holder_ > 0) {
      ::kill(holder_, SIGKILL);
      ::waitpid(holder_, nullptr, 0);
    }
    if (!link_.empty() && std::filesystem::exists("/sys/class/net/" + link_)) {
      (void)run({"ip", "link", "del", link_}, net_log_);  // normally gone with the namespace
    }
  }

  Result<testing::PgCluster*> testCluster() override { return cluster_.get(); }
  std::string replicaDatabase() override { return cluster_->tcpConninfo(database()); }

  Result<void> makeNamespace() {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) return errnoError("pipe2", errno);
    holder_ = ::fork();
    if (holder_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::unshare(CLONE_NEWNET) != 0) ::_exit(1);
      const char c = 1;
      (void)!::write(ready[1], &c, 1);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char c = 0;
    const bool up = ::read(ready[0], &c, 1) == 1;
    ::close(ready[0]);
    if (!up) return Error(plfm::errc::kUnavailable, "unshare(CLONE_NEWNET) failed");
    return ok();
  }

  // The veth pair: fdXX:..::1 on the host end (PostgreSQL), ::2 in the namespace (A).
  Result<void> wire() {
    const pid_t me = ::getpid();
    link_ = std::string(kLinkPrefix) + std::to_string(me);
    char prefix[64];
    std::snprintf(prefix, sizeof(prefix),
                  "fd70:6c66:6d70:%x::", static_cast<unsigned>(me & 0xffff));
    prefix_ = prefix;
    host_ = prefix_ + "1";
    guest_ = prefix_ + "2";
    PLFM_TRY(run({"ip", "link", "add", link_, "type", "veth", "peer", "name", "eth0", "netns",
                  std::to_string(holder_)},
                 net_log_));
    PLFM_TRY(run({"ip", "addr", "add", host_ + "/64", "dev", link_, "nodad"}, net_log_));
    PLFM_TRY(run({"ip", "link", "set", link_, "up"}, net_log_));
    PLFM_TRY(inside({"ip", "link", "set", "lo", "up"}));
    PLFM_TRY(inside({"ip", "addr", "add", guest_ + "/64", "dev", "eth0", "nodad"}));
    PLFM_TRY(inside({"ip", "link", "set", "eth0", "up"}));
    return ok();
  }

  Result<void> inside(std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"nsenter", "--net=/proc/" + std::to_string(holder_) + "/ns/net"});
    return run(argv, net_log_);
  }

  // Drops every packet between A's namespace and PostgreSQL, both ways.
  Result<void> cut() {
    const std::string port = std::to_string(cluster_->port());
    const std::string rules = net_dir_->file("partition.nft");
    std::string text = "table inet plfm_partition {\n  chain out {\n";
    text += "    type filter hook output priority 0;\n    ip6 daddr ";
    text += host_;
    text += " tcp dport ";
    text += port;
    text += " drop\n  }\n  chain in {\n    type filter hook input priority 0;\n    ip6 saddr ";
    text += host_;
    text += " tcp sport ";
    text += port;
    text += " drop\n  }\n}\n";
    PLFM_TRY(writeFileAtomic(rules, text));
    PLFM_TRY(inside({"nft", "-f", rules}));
    return ok();
  }

  Result<void> heal() {
    PLFM_TRY(inside({"nft", "delete", "table", "inet", "plfm_partition"}));
    return ok();
  }

  std::string log(const Replica& r) { return readFile(r.dir + "/cp.log").value_or(""); }

  std::unique_ptr<plfm::testing::TempDir> net_dir_;
  std::string net_log_;
  std::unique_ptr<testing::PgCluster> cluster_;
  pid_t holder_ = -1;
  std::string link_;
  std::string prefix_;
  std::string host_;
  std::string guest_;
};

double msSince(std::chrono::steady_clock::time_point at) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - at).count();
}

TEST_F(HaPartitionTest, APartitionedLeaderStepsDownWithin10sAndTheOtherReplicaTakesOver) {
  auto conn = connect();
  Replica& a = replicas_[0];
  Replica& b = replicas_[1];
  ASSERT_EQ(leader(conn), &a) << query(conn, "SELECT holder FROM leadership");
  ASSERT_EQ(query(conn, "SELECT epoch FROM leadership"), "1");
  ASSERT_EQ(query(conn, "SELECT count(*) FROM pg_stat_activity WHERE client_addr = '" + guest_ +
                            "' AND application_name = 'plfm-leadership'"),
            "1")
      << "A's lock session does not come over TCP from its namespace";
  auto before = call(a, "GET", "/v1/system/status", nullptr, 5s);
  ASSERT_EQ(before.status, 200) << before.body.dump();
  EXPECT_EQ(before.body["this_replica_leads"], true);
  const auto [env, rel] = makeEnv(b, "acme");
  ASSERT_FALSE(env.empty());
  ASSERT_EQ(call(b, "POST", "/v1/envs/" + env + "/deploys", {{"release_id", rel}}).status, 201);

  // The load: scale changes through B, up and down, all along.
  startLoad(env, {&b});
  std::this_thread::sleep_for(1500ms);  // A schedules B's changes for a while

  const size_t lost_before = countFrom(log(a), "leadership lost");
  const auto cut_at = std::chrono::steady_clock::now();
  auto cut_ok = cut();
  ASSERT_TRUE(cut_ok.has_value()) << cut_ok.error().toString();
  double stepped_ms = -1;
  double b_ms = -1;
  while ((stepped_ms < 0 || b_ms < 0) && std::chrono::steady_clock::now() - cut_at < 20s) {
    if (stepped_ms < 0 && countFrom(log(a), "leadership lost") > lost_before) {
      stepped_ms = msSince(cut_at);
    }
    if (b_ms < 0 && leader(conn) == &b) b_ms = msSince(cut_at);
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(stepped_ms, 0) << "A never noticed:\n" << tailFile(a.dir + "/cp.log", 20);
  EXPECT_LT(stepped_ms, 10000) << "A stepped down only after " << stepped_ms << " ms";
  ASSERT_GE(b_ms, 0) << "B never took over:\n" << tailFile(b.dir + "/cp.log", 20);
  EXPECT_EQ(query(conn, "SELECT epoch FROM leadership"), "2");

  // Scheduling resumed on B: a round under its epoch saw the next change.
  auto put = call(b, "PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 9}}}});
  ASSERT_EQ(put.status, 200) << put.body.dump();
  const std::string seq = query(conn, "SELECT max(seq) FROM events");
  const auto put_at = std::chrono::steady_clock::now();
  while (query(conn, "SELECT settled >= " + seq + " FROM leadership") != "t" &&
         std::chrono::steady_clock::now() - put_at < 10s) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(query(conn, "SELECT settled >= " + seq + " FROM leadership"), "t");
  const double resumed_ms = msSince(cut_at);
  std::this_thread::sleep_for(1s);

  // Heal. A's stuck connections get through again; whatever it tried late
  // must fail the fence, and it must not lead again while B holds the lock.
  const size_t a_log_at_heal = log(a).size();
  auto healed = heal();
  ASSERT_TRUE(healed.has_value()) << healed.error().toString();
  const auto heal_at = std::chrono::steady_clock::now();
  bool answered = false;
  testsupport::Reply status;
  while (!answered && std::chrono::steady_clock::now() - heal_at < 20s) {
    status = call(a, "GET", "/v1/system/status", nullptr, 2s);
    answered = status.status == 200 && status.body["leader"]["epoch"] == 2;
    if (!answered) std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(answered) << "A did not answer after the partition healed: " << status.status << " "
                        << status.body.dump() << "\n"
                        << tailFile(a.dir + "/cp.log", 20);
  EXPECT_EQ(status.body["this_replica_leads"], false) << status.body.dump();
  const double answered_ms = msSince(heal_at);
  std::this_thread::sleep_for(2s);  // late retransmissions land
  const int acked = stopLoad(conn);

  const std::string a_log = log(a);
  const size_t lost_at = a_log.find("leadership lost");
  ASSERT_NE(lost_at, std::string::npos);
  EXPECT_EQ(countFrom(a_log, "leadership taken", lost_at), 0U) << a_log.substr(lost_at);
  EXPECT_EQ(countFrom(a_log, "\"msg\":\"scheduler round\",", lost_at), 0U) << a_log.substr(lost_at);
  const size_t fenced = countFrom(a_log, "refused by the epoch check", a_log_at_heal);
  EXPECT_EQ(leader(conn), &b);
  EXPECT_EQ(query(conn, "SELECT epoch FROM leadership"), "2");
  EXPECT_EQ(doublePlacements(conn), "0");
  std::printf(
      "partition: A stepped down after %.0f ms, B led after %.0f ms, scheduling resumed after "
      "%.0f ms; after the heal A answered in %.0f ms, %zu late write(s) of A fenced; %d scale "
      "changes acknowledged\n",
      stepped_ms, b_ms, resumed_ms, answered_ms, fenced, acked);
}

}  // namespace
}  // namespace plfm::cp
