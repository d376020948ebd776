// `vt volumes` end to end: the real vt binary against a real control plane on
// a real PostgreSQL. The transcript (receipts, tables, JSON, errors and exit
// codes) is a golden file.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "vt_harness.h"

namespace plfm::vt {
namespace {

using testing::runVt;
using testing::Transcript;
using testing::VtResult;

constexpr std::string_view kManifest = R"(app = "shop"
image = "127.0.0.1:5000/shop@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

[processes.web]
command = ["/shop"]

[[volumes]]
name = "uploads"
mount = "/data"
size = "1GiB"
backup_every = "1h"
backup_keep = 24
)";

class VtVolumesTest : public testing::AcmeOrgTest {};

TEST_F(VtVolumesTest, CreateListGetExtendRmMatchGoldenTranscript) {
  Transcript& t = t_;
  ASSERT_EQ(t.run({"apps", "create", "shop", "-q"}).code, 0);
  ASSERT_EQ(t.run({"envs", "create", "prod", "--app", "shop", "-q"}).code, 0);
  const std::vector<std::string> scope = {"--app", "shop", "--env", "prod"};
  auto in = [&](std::vector<std::string> args) {
    args.insert(args.end(), scope.begin(), scope.end());
    return args;
  };

  EXPECT_EQ(t.run(in({"volumes", "list", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "create", "uploads", "--process", "web", "--size", "10GiB",
                      "--format", "table"}))
                .code,
            0);
  EXPECT_EQ(t.run(in({"volumes", "create", "uploads", "--process", "web", "--slot", "1", "--size",
                      "1GiB", "--format", "json"}))
                .code,
            0);
  EXPECT_EQ(
      t.run(in({"volumes", "create", "cache", "--process", "worker", "--size", "512MiB", "-q"}))
          .code,
      0);
  // Taken, out of range, bad grammar, and usage errors.
  EXPECT_EQ(t.run(in({"volumes", "create", "uploads", "--process", "web", "--size", "2GiB"})).code,
            4);
  EXPECT_EQ(t.run(in({"volumes", "create", "tiny", "--process", "web", "--size", "1MiB"})).code, 1);
  EXPECT_EQ(t.run(in({"volumes", "create", "Bad_Name", "--process", "web", "--size", "1GiB"})).code,
            1);
  EXPECT_EQ(t.run(in({"volumes", "create", "data", "--process", "web", "--size", "10GB"})).code, 2);
  EXPECT_EQ(t.run(in({"volumes", "create", "data", "--size", "1GiB"})).code, 2);

  EXPECT_EQ(t.run(in({"volumes", "list", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "list", "--format", "json"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "get", "uploads-0", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "get", "uploads"})).code, 1);
  EXPECT_EQ(
      t.run(in({"volumes", "extend", "uploads-0", "--size", "20GiB", "--format", "table"})).code,
      0);
  EXPECT_EQ(t.run(in({"volumes", "extend", "uploads-0", "--size", "20GiB"})).code, 1);
  EXPECT_EQ(t.run(in({"volumes", "rm", "uploads-1", "--format", "table"})).code, 2);
  EXPECT_EQ(t.run(in({"volumes", "rm", "uploads-1", "--yes", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "rm", "cache-0", "--yes", "--format", "json"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "get", "uploads-1"})).code, 1);
  EXPECT_EQ(t.run(in({"volumes", "list", "--format", "table"})).code, 0);
  PLFM_EXPECT_GOLDEN("golden/volumes.txt", t.text());
}

// Snapshots, restore, fork and verify against a control plane with one
// node played over HTTP: the deploy's uploads-0 is placed there and
// reported ready, and one snapshot is reported taken and backed up. No
// agent runs the ops, so they stay `requested`: the transcript shows the
// receipts, the lists, and the refusals.
TEST_F(VtVolumesTest, SnapshotsRestoreForkVerifyMatchGoldenTranscript) {
  Transcript& t = t_;
  const std::string manifest = config_.file("vt.toml");
  {
    std::ofstream out(manifest);
    out << kManifest;
  }
  norm_.literal(manifest, "<manifest>");
  const std::vector<std::string> scope = {"--app", "shop", "--env", "prod"};
  auto in = [&](std::vector<std::string> args) {
    args.insert(args.end(), scope.begin(), scope.end());
    return args;
  };
  auto node = testing::enrollAgentWithVt(cp_->url, config_.path(), "w1.example");
  ASSERT_TRUE(node.contains("node_id")) << node.dump();
  const std::string node_id = node["node_id"];
  const std::string node_token = node["token"];
  ASSERT_EQ(testing::agentPost(cp_->url, node_id, node_token, "heartbeat",
                               {{"volume_capacity_bytes", int64_t{100} << 30}}),
            200);
  ASSERT_EQ(t.run({"deploy", "--manifest", manifest, "--detach", "-q"}).code, 0);
  // The scheduler places uploads-0 with slot 0's instance; the agent makes
  // the file and reports it ready.
  std::string volume_id;
  for (int i = 0; i < 100 && volume_id.empty(); ++i) {
    auto plan = testing::nodePlan(cp_->url, node_id, node_token);
    for (const auto& v : plan.value("volumes", nlohmann::json::array())) {
      volume_id = v.value("volume_id", "");
    }
    if (volume_id.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(volume_id.empty());
  ASSERT_EQ(testing::agentPost(cp_->url, node_id, node_token, "volumes/" + volume_id + "/status",
                               {{"state", "ready"}, {"size_bytes", int64_t{1} << 30}}),
            200);
  for (int i = 0; i < 100; ++i) {
    VtResult g = runVt(in({"volumes", "get", "uploads-0", "--format", "json"}), config_.path());
    if (g.out.find("\"ready\"") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  t.note("agent enrolled " + node_id + " and reported uploads-0 ready");

  EXPECT_EQ(t.run(in({"volumes", "get", "uploads-0", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "snapshot", "uploads-0", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "snapshot", "uploads-0", "--no-freeze", "--format", "json"})).code,
            0);
  VtResult listed =
      runVt(in({"volumes", "snapshots", "uploads-0", "--format", "json"}), config_.path());
  const auto snaps = nlohmann::json::parse(listed.out, nullptr, false);
  ASSERT_TRUE(snaps.is_object() && snaps["items"].size() == 2U) << listed.out << listed.err;
  const std::string snap = snaps["items"][1]["snapshot_id"];
  EXPECT_EQ(t.run(in({"volumes", "snapshots", "uploads-0", "--format", "table"})).code, 0);
  // Nothing is taken or backed up: the server refuses, saying why (exit 4).
  EXPECT_EQ(t.run(in({"volumes", "verify", "uploads-0"})).code, 4);
  EXPECT_EQ(t.run(in({"volumes", "fork", "uploads-0", "--node", node_id})).code, 4);
  EXPECT_EQ(t.run(in({"volumes", "restore", "uploads-0", "--from", snap})).code, 4);
  // Usage errors, before any request (exit 2).
  EXPECT_EQ(t.run(in({"volumes", "restore", "uploads-0"})).code, 2);
  EXPECT_EQ(
      t.run(in({"volumes", "restore", "uploads-0", "--from", snap, "--to", "old", "--in-place"}))
          .code,
      2);
  EXPECT_EQ(t.run(in({"volumes", "fork", "uploads-0"})).code, 2);
  // The agent takes the first snapshot and backs it up: now it restores,
  // forks and verifies (each op `requested`: no agent runs it here).
  const std::string taken_path = "volumes/" + volume_id + "/snapshots/" + snap;
  ASSERT_EQ(testing::agentPost(cp_->url, node_id, node_token, taken_path,
                               {{"state", "taken"},
                                {"origin", "api"},
                                {"method", "reflink"},
                                {"consistent", true},
                                {"freeze_ms", 12},
                                {"size_bytes", int64_t{1} << 30},
                                {"sha256", std::string(64, 'a')},
                                {"taken_at", "2026-12-01T10:00:00Z"}}),
            200);
  ASSERT_EQ(testing::agentPost(cp_->url, node_id, node_token, taken_path,
                               {{"state", "backed_up"},
                                {"backup_id", std::string(64, 'b')},
                                {"bytes_added", 4096},
                                {"duration_ms", 300}}),
            200);
  t.note("agent reported the first snapshot taken, then backed up");
  EXPECT_EQ(t.run(in({"volumes", "snapshots", "uploads-0", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "restore", "uploads-0", "--from", snap, "--to", "old", "--format",
                      "table"}))
                .code,
            0);
  EXPECT_EQ(t.run(in({"volumes", "restore", "uploads-0", "--from", snap, "--to", "old"})).code, 4);
  EXPECT_EQ(t.run(in({"volumes", "fork", "uploads-0", "--node", node_id, "--format", "json"})).code,
            0);
  EXPECT_EQ(t.run(in({"volumes", "verify", "uploads-0", "--format", "table"})).code, 0);
  // --wait follows the snapshot or op until the agent reports it: a snapshot
  // taken, a drill that failed (a ✗ receipt with the reason, exit 1).
  // The agent answers the first op of `kind` that is not in its plan yet.
  auto agentAnswers = [&](const std::string& kind,
                          const std::function<void(const nlohmann::json&)>& answer) {
    std::set<std::string> seen;
    for (const auto& op : testing::nodePlan(cp_->url, node_id, node_token)
                              .value("volume_ops", nlohmann::json::array())) {
      seen.insert(op.value("op_id", ""));
    }
    return std::thread([&, kind, answer, seen] {
      for (int i = 0; i < 200; ++i) {
        auto plan = testing::nodePlan(cp_->url, node_id, node_token);
        for (const auto& op : plan.value("volume_ops", nlohmann::json::array())) {
          if (op.value("kind", "") == kind && seen.count(op.value("op_id", "")) == 0) {
            answer(op);
            return;
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      ADD_FAILURE() << "no new " << kind << " op in the plan";
    });
  };
  std::thread agent = agentAnswers("snapshot", [&](const nlohmann::json& op) {
    EXPECT_EQ(testing::agentPost(cp_->url, node_id, node_token,
                                 "volumes/" + volume_id + "/snapshots/" + op.value("op_id", ""),
                                 {{"state", "taken"},
                                  {"origin", "api"},
                                  {"method", "reflink"},
                                  {"consistent", true},
                                  {"freeze_ms", 9},
                                  {"size_bytes", int64_t{1} << 30},
                                  {"sha256", std::string(64, 'c')},
                                  {"taken_at", "2026-12-01T11:00:00Z"}}),
              200);
  });
  EXPECT_EQ(t.run(in({"volumes", "snapshot", "uploads-0", "--wait", "--format", "table"})).code, 0);
  agent.join();
  agent = agentAnswers("verify", [&](const nlohmann::json& op) {
    EXPECT_EQ(
        testing::agentPost(cp_->url, node_id, node_token, "volume-ops/" + op.value("op_id", ""),
                           {{"kind", "verify"},
                            {"volume_id", volume_id},
                            {"snapshot_id", snap},
                            {"ok", false},
                            {"reason", "the restored file's sha256 does not match the snapshot's"},
                            {"duration_ms", 40}}),
        200);
  });
  EXPECT_EQ(t.run(in({"volumes", "verify", "uploads-0", "--wait", "--format", "table"})).code, 1);
  agent.join();
  // In place is refused while slot 0's instance should run with the volume.
  EXPECT_EQ(t.run(in({"volumes", "restore", "uploads-0", "--from", snap, "--in-place"})).code, 4);
  EXPECT_EQ(t.run(in({"volumes", "list", "--format", "table"})).code, 0);
  // A volume no node holds yet cannot be snapshotted.
  ASSERT_EQ(
      t.run(in({"volumes", "create", "cache", "--process", "web", "--size", "1GiB", "-q"})).code,
      0);
  EXPECT_EQ(t.run(in({"volumes", "snapshot", "cache-0"})).code, 4);
  PLFM_EXPECT_GOLDEN("golden/volume_snapshots.txt", t.text());
}

}  // namespace
}  // namespace plfm::vt
