// The node agent's volume ops end to end (volume-mounts.md "Contracts for
// snapshots, backups, restore and verify", §Agent): a real QEMU microVM
// writes to its volume, a snapshot op backs it up to a real restic
// repository, and a second agent restores it. Plan-file mode: the agents'
// records (STATE/snapshots/*.json, STATE/volume-ops/*.json) say how each op
// went. Runs in a private network namespace, as agent_e2e_test does.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/agent.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "runtime/qemu_runtime.h"
#include "support/agent_options.h"
#include "support/agent_world.h"

namespace plfm::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

testing::AgentWorld* g_world = nullptr;

class World : public ::testing::Environment {
 public:
  void SetUp() override {
    ASSERT_TRUE(testing::enterPrivateNetns());
    auto world = testing::makeAgentWorld(PLFM_SOURCE_DIR, PLFM_VT_INIT_BIN, PLFM_TEST_WORKLOAD_BIN);
    ASSERT_TRUE(world) << world.error().toString();
    g_world = world->release();
  }
  void TearDown() override { delete g_world; }
};
const auto* const kWorld = ::testing::AddGlobalTestEnvironment(new World);

std::string runOut(const std::string& cmd) { return testing::shellOutput(cmd); }

std::unique_ptr<Agent> startedAgent(const AgentOptions& o) {
  runtime::QemuOptions q;
  q.accel = "auto";
  q.probe_dir = g_world->dir->path();
  auto agent = std::make_unique<Agent>(o, std::make_unique<runtime::QemuRuntime>(q));
  EXPECT_TRUE(agent->start());
  return agent;
}

class VolumeOpsE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = std::make_unique<plfm::testing::TempDir>("vo");
    opts_ = testing::planFileAgentOptions(*g_world, state_->path());
  }
  void TearDown() override {
    if (agent_) agent_->stop();
    EXPECT_EQ(runOut("pgrep -f -- '[q]emu-system.*" + state_->path() + "' | wc -l"), "0\n");
  }
  void startAgent() { agent_ = startedAgent(opts_); }
  std::string logOf(const std::string& id) {
    return readFile(state_->path() + "/logs/" + id + ".log").value_or("");
  }

  std::unique_ptr<plfm::testing::TempDir> state_;
  AgentOptions opts_;
  std::unique_ptr<Agent> agent_;
  int64_t version_ = 0;
};

// The JSON record the agent keeps of a volume op or snapshot (volume_ops.h)
// once `done` says it is finished; {} after `timeout`.
json waitRecord(const std::string& path, const std::function<bool(const json&)>& done,
                std::chrono::seconds timeout = 90s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto text = readFile(path);
    json j = text ? json::parse(*text, nullptr, false) : json();
    if (j.is_object() && done(j)) return j;
    std::this_thread::sleep_for(100ms);
  }
  return json::object();
}

// volume-mounts.md §Agent: a snapshot op of a volume a workload wrote is
// backed up to a restic repository; a second node (a fresh agent with its
// own state dir, the first one's deleted) restores that backup into a new
// volume through a restore op, and the file's sha256 is the snapshot's.
// Then a corrupted repository makes a verify op fail with the reason.
TEST_F(VolumeOpsE2e, ABackupIsRestoredOnAnotherNodeAndACorruptedOneFailsItsVerify) {
  const std::string vol = "vol_0e2e0000000000000000000004";
  const std::string vol2 = "vol_0e2e0000000000000000000005";
  const std::string snap = "snap_0e2e0000000000000000000001";
  const std::string restore_op = "vop_0e2e0000000000000000000001";
  const std::string verify_op = "vop_0e2e0000000000000000000002";
  const uint64_t size = uint64_t{32} << 20;
  plfm::testing::TempDir repo_dir("rr");
  opts_.backup.repository = repo_dir.file("repo");
  opts_.backup.password_file = repo_dir.file("password");
  ASSERT_TRUE(writeFileAtomic(opts_.backup.password_file, "e2e-backup-password", 0600));

  const std::string id = "inst_0e2e0000000000000000000v01";
  json spec = testing::workloadSpec(*g_world, id, "org_0e2e0000000000000000000000", {}, "", 128);
  spec["command"] = {"/bin/sh", "-c",
                     "echo kept-across-nodes > /data/mark && sync && echo written && "
                     "while :; do sleep 1; done"};
  spec["volumes"] = {
      {{"volume_id", vol}, {"name", "data-0"}, {"mount", "/data"}, {"size_bytes", size}}};
  json plan = {{"node_id", "node_e2e"},
               {"version", ++version_},
               {"instances", json::array({spec})},
               {"volumes", {{{"volume_id", vol}, {"size_bytes", size}, {"state", "ready"}}}}};
  ASSERT_TRUE(writeFileAtomic(opts_.plan_file, plan.dump()));
  startAgent();
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (logOf(id).find(R"("line":"written")") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_NE(logOf(id).find(R"("line":"written")"), std::string::npos) << logOf(id);

  // The snapshot op: frozen in the guest, copied, hashed, backed up.
  plan["version"] = ++version_;
  plan["volume_ops"] = {
      {{"op_id", snap}, {"kind", "snapshot"}, {"volume_id", vol}, {"freeze", true}}};
  ASSERT_TRUE(writeFileAtomic(opts_.plan_file, plan.dump()));
  const json taken = waitRecord(state_->path() + "/snapshots/" + snap + ".json",
                                [](const json& j) { return j.value("state", "") != "taken"; });
  ASSERT_EQ(taken.value("state", ""), "backed_up") << taken.dump();
  const std::string sha = taken["sha256"];
  const std::string backup_id = taken["backup_id"];
  EXPECT_EQ(sha256OfFile(state_->path() + "/snapshots/" + snap + ".ext4").value_or(""), sha);
  agent_->stop();
  agent_.reset();
  fs::remove_all(state_->path());  // the first node is gone, and its snapshot with it
  fs::create_directories(state_->path());

  // Another node restores the backup into a new volume.
  plfm::testing::TempDir other("ag2");
  AgentOptions o2 = testing::planFileAgentOptions(*g_world, other.path());
  o2.backup = opts_.backup;
  json restore = {{"op_id", restore_op},     {"kind", "restore"},   {"volume_id", vol2},
                  {"source_volume_id", vol}, {"snapshot_id", snap}, {"source", "backup"},
                  {"backup_id", backup_id},  {"sha256", sha},       {"size_bytes", size},
                  {"in_place", false}};
  json plan2 = {{"node_id", "node_e2e2"},
                {"version", 1},
                {"instances", json::array()},
                {"volumes", {{{"volume_id", vol2}, {"size_bytes", size}, {"state", "restoring"}}}},
                {"volume_ops", json::array({restore})}};
  ASSERT_TRUE(writeFileAtomic(o2.plan_file, plan2.dump()));
  auto second = startedAgent(o2);
  auto finished = [](const json& j) { return j.contains("finished_ms"); };
  const json restored = waitRecord(other.path() + "/volume-ops/" + restore_op + ".json", finished);
  EXPECT_EQ(restored.value("ok", false), true) << restored.dump();
  const std::string file2 = other.path() + "/volumes/" + vol2 + ".ext4";
  EXPECT_EQ(sha256OfFile(file2).value_or(""), sha);
  EXPECT_EQ(runOut("debugfs -R 'cat /mark' " + file2 + " 2>/dev/null"), "kept-across-nodes\n");

  // A corrupted repository: the drill restores, checks, and says no.
  for (const auto& e : fs::recursive_directory_iterator(opts_.backup.repository + "/data")) {
    if (!e.is_regular_file()) continue;
    fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(e.file_size() / 2));
    f << "corrupted-corrupted";
  }
  plan2["version"] = 2;
  plan2["volumes"][0]["state"] = "ready";
  plan2["volume_ops"] = {{{"op_id", verify_op},
                          {"kind", "verify"},
                          {"volume_id", vol2},
                          {"snapshot_id", snap},
                          {"backup_id", backup_id},
                          {"sha256", sha}}};
  ASSERT_TRUE(writeFileAtomic(o2.plan_file, plan2.dump()));
  const json verified = waitRecord(other.path() + "/volume-ops/" + verify_op + ".json", finished);
  EXPECT_EQ(verified.value("ok", true), false) << verified.dump();
  EXPECT_FALSE(verified.value("reason", "").empty());
  EXPECT_EQ(verified.value("reason", "").find(opts_.backup.repository), std::string::npos)
      << "the repository string never reaches a reason";
  EXPECT_FALSE(fs::exists(other.path() + "/volumes/.verify-" + verify_op));
  second->stop();
}

}  // namespace
}  // namespace plfm::agent
