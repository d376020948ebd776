// `vt volumes` end to end: the real vt binary against a real control plane on
// a real PostgreSQL. The transcript (receipts, tables, JSON, errors and exit
// codes) is a golden file.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "plfm/core/strings.h"
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
// reported ready. No agent takes the snapshots, so they stay `requested`:
// the transcript shows the receipts, the list, and the refusals.
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
  VtResult enroll = runVt({"nodes", "enroll", "-q"}, config_.path());
  ASSERT_EQ(enroll.code, 0) << enroll.err;
  auto node = testing::enrollAgent(cp_->url, std::string(trim(enroll.out)), "w1.example");
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
  // A volume no node holds yet cannot be snapshotted.
  ASSERT_EQ(
      t.run(in({"volumes", "create", "cache", "--process", "web", "--size", "1GiB", "-q"})).code,
      0);
  EXPECT_EQ(t.run(in({"volumes", "snapshot", "cache-0"})).code, 4);
  PLFM_EXPECT_GOLDEN("golden/volume_snapshots.txt", t.text());
}

}  // namespace
}  // namespace plfm::vt
