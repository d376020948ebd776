// `vt dev up --ha` end to end (issue 22, docs/operations/ha.md): the real vt
// brings up two control-plane replicas and a pg_auto_failover formation
// (monitor, primary, synchronous standby) in a private network namespace;
// examples/hello is deployed on a real microVM. Then the two failovers anyone
// can try on it: kill -9 of the leader replica (the other leads, vt's context
// moves to it) and kill -9 of the PostgreSQL primary's keeper and postgres
// (the standby is promoted, writes resume within 30 s). The instance keeps
// answering through the ingress throughout and is never restarted; `vt dev
// up` brings the lost parts back, and `vt dev down` leaves nothing.
#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "dev_formation.h"
#include "dev_process.h"
#include "netns_environment.h"
#include "plfm/core/process.h"
#include "plfm/testing/failure_summary.h"
#include "vt_dev_driver.h"

namespace plfm {
namespace {

const void* const kFailureSummary = plfm::testing::installFailureSummary();

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const auto* const kEnv = e2e::addPrivateNetworkEnvironment("vt dev --ha e2e");

using e2e::VtRun;

class VtDevHa : public ::testing::Test, public e2e::VtDevDriver {
 protected:
  // --purge: as root the formation lives outside the state dir.
  void TearDown() override {
    (void)vt({"dev", "down", "--purge", "--state-dir", state_->path()}, 120s);
  }

  json status() {
    VtRun st =
        vt({"dev", "status", "--state-dir", state_->path(), "--format", "json"}, 60s, {}, false);
    json j = json::parse(st.out, nullptr, false);
    return j.is_object() ? j : json::object();
  }

  // The pid `vt dev` recorded for `component`, -1 when none.
  pid_t pidOf(const std::string& component) {
    return vt::dev::readPidFile(state_->file("run/" + component + ".pid"));
  }

  // The data node ("a", "b") the monitor has as primary ("wait_primary"
  // while it has no standby), "" while none.
  std::string primary() {
    for (const auto& n : status().value("formation", json::array())) {
      const std::string state = n.value("reported_state", "");
      if ((state == "primary" || state == "wait_primary") && n.value("goal_state", "") == state) {
        return n.value("node", "");
      }
    }
    return "";
  }

  // `vt system status` through the context (both replicas' URLs).
  json systemStatus() {
    VtRun r = vt({"system", "status", "--format", "json"}, 60s, {}, false);
    json j = json::parse(r.out, nullptr, false);
    return j.is_object() ? j : json::object();
  }

  // Seconds until a keyed mutation through vt succeeds, or -1 after `limit`.
  double secondsUntilWrite(const std::string& org, Clock::time_point since,
                           std::chrono::seconds limit) {
    while (Clock::now() - since < limit) {
      if (vt({"orgs", "create", org, "--format", "json"}, 60s, {}, false).code == 0) {
        return std::chrono::duration<double>(Clock::now() - since).count();
      }
      std::this_thread::sleep_for(250ms);
    }
    return -1;
  }
};

TEST_F(VtDevHa, ReplicaAndPostgresFailover) {
  phase("vt dev up --ha");
  std::vector<std::string> up = upArgs();
  up.emplace_back("--ha");
  VtRun r = vt(up, 300s);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* c : {"pg-monitor", "pg-a", "pg-b", "formation", "control-plane-2"}) {
    EXPECT_NE(r.err.find(std::string("  ") + c), std::string::npos) << c;
  }
  json st = status();
  ASSERT_EQ(st.value("components", json::array()).size(), 8U) << st.dump();
  for (const auto& c : st["components"]) EXPECT_EQ(c["health"], "healthy") << c.dump();
  ASSERT_EQ(st.value("formation", json::array()).size(), 2U) << st.dump();
  EXPECT_EQ(st["control_plane_urls"].size(), 2U);
  VtRun show = vt({"dev", "autoctl", "show", "state", "--state-dir", state_->path()});
  ASSERT_EQ(show.code, 0) << show.err;
  EXPECT_NE(show.out.find("secondary"), std::string::npos) << show.out;
  // Each replica is healthy and one leads; replication is synchronous.
  json sys = systemStatus();
  ASSERT_TRUE(sys.contains("leader")) << sys.dump();
  const json standbys = sys.value("replication", json::object()).value("standbys", json());
  ASSERT_TRUE(standbys.is_array()) << sys.dump();
  ASSERT_EQ(standbys.size(), 1U) << sys.dump();
  EXPECT_EQ(standbys[0].value("sync_state", ""), "quorum") << sys.dump();

  phase("deploy examples/hello");
  const std::string ref = pushHello();
  ASSERT_NE(ref.find("@sha256:"), std::string::npos) << ref;
  const std::string manifest = std::string(PLFM_SOURCE_DIR) + "/examples/hello/vt.toml";
  ASSERT_EQ(vt({"deploy", "--manifest", manifest, "--image", ref, "--timeout", "4m"}, 300s).code,
            0);
  ASSERT_EQ(vt({"routes", "add", "hello.localhost", "--app", "hello", "--port", "8443",
                "--listener-port", std::to_string(ingressPort())})
                .code,
            0);
  const std::string before = waitFor("hello.localhost", "::1", "instance: inst_", 90s);
  ASSERT_NE(before.find("instance: inst_"), std::string::npos) << before;
  const json instances = agentInstances();
  ASSERT_EQ(instances.size(), 1U) << instances.dump();
  const auto vmm = instances[0].value("vmm_pid", json());

  phase("kill -9 the leading control-plane replica");
  const std::string leader_id =
      systemStatus().value("leader", json::object()).value("replica_id", "");
  // The replica ids are "HOST:PID": the leader's pid names its component.
  const pid_t cp1 = pidOf("control-plane");
  const pid_t cp2 = pidOf("control-plane-2");
  ASSERT_GT(cp1, 0);
  ASSERT_GT(cp2, 0);
  const pid_t leader = leader_id.ends_with(":" + std::to_string(cp2)) ? cp2 : cp1;
  ASSERT_EQ(::kill(leader, SIGKILL), 0);
  auto t0 = Clock::now();
  const double replica_write = secondsUntilWrite("ha-after-replica", t0, 60s);
  std::printf("after kill -9 of the leader replica: a write through vt after %.2f s\n",
              replica_write);
  EXPECT_GE(replica_write, 0);
  json led;
  for (auto deadline = Clock::now() + 30s; Clock::now() < deadline;) {
    led = systemStatus();
    if (led.value("this_replica_leads", false)) break;
    std::this_thread::sleep_for(250ms);
  }
  EXPECT_TRUE(led.value("this_replica_leads", false)) << led.dump();
  std::printf("the other replica leads %.2f s after the kill (epoch %s)\n",
              std::chrono::duration<double>(Clock::now() - t0).count(),
              led.value("leader", json::object()).value("epoch", json()).dump().c_str());

  phase("kill -9 the PostgreSQL primary (its keeper and postgres)");
  const std::string old_primary = primary();
  ASSERT_FALSE(old_primary.empty());
  const pid_t keeper = pidOf("pg-" + old_primary);
  ASSERT_GT(keeper, 0);
  ASSERT_EQ(::kill(-keeper, SIGKILL), 0);  // it leads its process group
  t0 = Clock::now();
  const double pg_write = secondsUntilWrite("ha-after-postgres", t0, 90s);
  std::printf("after kill -9 of the PostgreSQL primary pg-%s: writes resume after %.2f s\n",
              old_primary.c_str(), pg_write);
  EXPECT_GE(pg_write, 0);
  EXPECT_LT(pg_write, 30);
  const std::string new_primary = primary();
  EXPECT_FALSE(new_primary.empty());
  EXPECT_NE(new_primary, old_primary);

  phase("the instance never stopped");
  const std::string after = waitFor("hello.localhost", "::1", "instance: inst_", 30s);
  EXPECT_NE(after.find("instance: inst_"), std::string::npos) << after;
  const json still = agentInstances();
  ASSERT_EQ(still.size(), 1U) << still.dump();
  EXPECT_EQ(still[0].value("instance_id", ""), instances[0].value("instance_id", ""));
  EXPECT_EQ(still[0].value("vmm_pid", json()), vmm) << "the VMM was restarted";

  phase("vt dev up brings the lost replica and node back");
  r = vt(upArgs(), 300s);
  ASSERT_EQ(r.code, 0) << r.err;
  st = status();
  for (const auto& c : st.value("components", json::array())) {
    EXPECT_EQ(c["health"], "healthy") << c.dump();
  }
  std::string settled;
  for (auto deadline = Clock::now() + 60s; Clock::now() < deadline;) {
    settled.clear();
    for (const auto& n : status().value("formation", json::array())) {
      settled += n.value("node", "") + ":" + n.value("reported_state", "") + " ";
    }
    if (settled.find("primary") != std::string::npos &&
        settled.find("secondary") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_NE(settled.find(old_primary + ":secondary"), std::string::npos) << settled;

  phase("vt dev down");
  VtRun down = vt({"dev", "down", "--state-dir", state_->path()}, 180s);
  EXPECT_EQ(down.code, 0) << down.err;
  EXPECT_TRUE(vt::dev::processesMentioning(state_->path()).empty());
  const std::string root = vt::dev::formationRoot(state_->path());
  EXPECT_TRUE(vt::dev::processesMentioning(root + "/").empty());
  ASSERT_TRUE(std::filesystem::exists(root + "/monitor/PG_VERSION")) << root;
  VtRun purge = vt({"dev", "down", "--purge", "--state-dir", state_->path()}, 60s);
  EXPECT_EQ(purge.code, 0) << purge.err;
  EXPECT_FALSE(std::filesystem::exists(root)) << root;
  // pg_autoctl's runtime files were in ROOT too, not in /tmp/pg_autoctl.
  EXPECT_FALSE(std::filesystem::exists("/tmp/pg_autoctl" + root)) << root;
}

}  // namespace
}  // namespace plfm
