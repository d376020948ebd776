// The real Agent against a fake control plane's node API: NodePlan.volumes
// makes, grows and deletes volume files, and each change reaches
// POST /v1/nodes/{node_id}/volumes/{volume_id}/status once (again only when
// it was not delivered); heartbeats carry volume_capacity_bytes
// (docs/specs/runtime/volume-mounts.md §Agent routes).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "agent/agent.h"
#include "plfm/core/process.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"
#include "support/fake_runtime.h"

namespace plfm::agent {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kNode = "nod_01jd0000000000000000000001";
constexpr const char* kVol = "vol_01jd0000000000000000000001";
constexpr const char* kVol2 = "vol_01jd0000000000000000000002";
constexpr uint64_t kMiB = uint64_t{1} << 20;

// The node API as far as volumes go: a plan it can change, the volume
// reports and heartbeats it got, and a switch that fails volume reports.
class FakeNodeApi {
 public:
  FakeNodeApi() {
    server_ = std::make_unique<http::Server>(http::ServerOptions{.listen = {"[::1]:0"}},
                                             [this](const http::Request& r) { return serve(r); });
    EXPECT_TRUE(server_->start());
  }
  ~FakeNodeApi() { server_->stop(1s); }
  FakeNodeApi(const FakeNodeApi&) = delete;
  FakeNodeApi& operator=(const FakeNodeApi&) = delete;

  [[nodiscard]] std::string url() const { return "http://" + server_->endpoints().front(); }
  void setVolumes(json volumes) {
    std::lock_guard lock(mu_);
    volumes_ = std::move(volumes);
    ++version_;
  }
  void failReports(bool fail) {
    std::lock_guard lock(mu_);
    fail_reports_ = fail;
  }
  [[nodiscard]] std::vector<std::pair<std::string, json>> reports() const {
    std::lock_guard lock(mu_);
    return reports_;
  }
  [[nodiscard]] std::optional<json> lastHeartbeat() const {
    std::lock_guard lock(mu_);
    return heartbeat_;
  }

 private:
  http::Response serve(const http::Request& r) {
    const std::string prefix = std::string("/v1/nodes/") + kNode;
    if (r.path == prefix + "/plan") {
      // A held poll, as the control plane holds one that has nothing new.
      std::this_thread::sleep_for(100ms);
      std::lock_guard lock(mu_);
      return http::Response::json(
          200,
          json{{"version", version_}, {"instances", json::array()}, {"volumes", volumes_}}.dump());
    }
    if (r.path == prefix + "/heartbeat") {
      std::lock_guard lock(mu_);
      heartbeat_ = json::parse(r.body, nullptr, false);
      return http::Response::json(200, R"({"plan_version":0})");
    }
    const std::string volumes = prefix + "/volumes/";
    if (r.method == "POST" && r.path.starts_with(volumes) && r.path.ends_with("/status")) {
      std::lock_guard lock(mu_);
      if (fail_reports_) return http::Response::json(503, R"({"error":{"code":"unavailable"}})");
      const std::string id =
          r.path.substr(volumes.size(), r.path.size() - volumes.size() - std::strlen("/status"));
      reports_.emplace_back(id, json::parse(r.body, nullptr, false));
      return http::Response::json(200, R"({"applied":true})");
    }
    return http::Response::json(404, R"({"error":{"code":"not_found"}})");
  }

  mutable std::mutex mu_;
  json volumes_ = json::array();                       // guarded by mu_
  int64_t version_ = 1;                                // guarded by mu_
  bool fail_reports_ = false;                          // guarded by mu_
  std::vector<std::pair<std::string, json>> reports_;  // guarded by mu_
  std::optional<json> heartbeat_;                      // guarded by mu_
  std::unique_ptr<http::Server> server_;
};

template <class Pred>
bool waitFor(Pred pred, std::chrono::milliseconds timeout = 10'000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

json entry(const char* id, uint64_t size, const char* state) {
  return {{"volume_id", id}, {"size_bytes", size}, {"state", state}};
}

class VolumeReportsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string state = dir_.file("state");
    fs::create_directories(state);
    const json credential = {{"control_plane", api_.url()},
                             {"node_id", kNode},
                             {"token", "nt_test"},
                             {"ipv6_prefix", ""},
                             {"heartbeat_interval_seconds", 1}};
    ASSERT_TRUE(writeFileAtomic(state + "/node.json", credential.dump(), 0600));
    std::ofstream(dir_.file("vmlinux")) << "not a kernel";
    std::ofstream(dir_.file("initrd")) << "not an initramfs";
    AgentOptions o;
    o.state_dir = state;
    o.kernel = dir_.file("vmlinux");
    o.initramfs = dir_.file("initrd");
    o.scratch_mb = 8;
    o.manage_network = false;
    agent_ = std::make_unique<Agent>(o, std::make_unique<testing::FakeRuntime>());
  }
  void TearDown() override {
    if (agent_) agent_->stop();
  }
  [[nodiscard]] std::string fileOf(const char* id) const {
    return dir_.file("state") + "/volumes/" + id + ".ext4";
  }
  // The reports of `id` so far, as "state size".
  [[nodiscard]] std::vector<std::string> reportsOf(const char* id) const {
    std::vector<std::string> out;
    for (const auto& [vol, body] : api_.reports()) {
      if (vol == id) {
        out.push_back(body.value("state", "") + " " +
                      std::to_string(body.value("size_bytes", uint64_t{0})));
      }
    }
    return out;
  }

  plfm::testing::TempDir dir_{"volrep"};
  FakeNodeApi api_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(VolumeReportsTest, MadeGrownAndDeletedAsThePlanSaysEachReportedOnce) {
  api_.setVolumes(json::array({entry(kVol, 16 * kMiB, "ready"),
                               // Refused at the edge: ignored, nothing made or deleted.
                               entry("vol_../../etc", 16 * kMiB, "deleting")}));
  ASSERT_TRUE(agent_->start());
  ASSERT_TRUE(waitFor([&] { return !reportsOf(kVol).empty(); }));
  EXPECT_TRUE(fs::exists(fileOf(kVol)));
  EXPECT_EQ(fs::file_size(fileOf(kVol)), 16 * kMiB);

  // Heartbeats say how big the volume filesystem is.
  ASSERT_TRUE(waitFor([&] {
    auto hb = api_.lastHeartbeat();
    return hb && hb->value("volume_capacity_bytes", uint64_t{0}) > 0;
  }));

  // A grow is reported once; an unchanged plan round reports nothing.
  api_.setVolumes(json::array({entry(kVol, 32 * kMiB, "ready")}));
  ASSERT_TRUE(waitFor([&] { return reportsOf(kVol).size() == 2; }));
  std::this_thread::sleep_for(500ms);  // a few more plan rounds
  EXPECT_EQ(reportsOf(kVol), (std::vector<std::string>{"ready 16777216", "ready 33554432"}));
  EXPECT_EQ(fs::file_size(fileOf(kVol)), 32 * kMiB);

  // A report the control plane did not take is sent again.
  api_.failReports(true);
  api_.setVolumes(json::array({entry(kVol, 32 * kMiB, "ready"), entry(kVol2, 16 * kMiB, "ready")}));
  ASSERT_TRUE(waitFor([&] { return fs::exists(fileOf(kVol2)); }));
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(reportsOf(kVol2).empty());
  api_.failReports(false);
  ASSERT_TRUE(waitFor([&] { return reportsOf(kVol2).size() == 1; }));

  // Deleting: the file goes and `deleted` is reported; the other stays.
  api_.setVolumes(
      json::array({entry(kVol, 32 * kMiB, "deleting"), entry(kVol2, 16 * kMiB, "ready")}));
  ASSERT_TRUE(waitFor([&] { return reportsOf(kVol).size() == 3; }));
  EXPECT_EQ(reportsOf(kVol).back(), "deleted 0");
  EXPECT_FALSE(fs::exists(fileOf(kVol)));
  EXPECT_TRUE(fs::exists(fileOf(kVol2)));
  EXPECT_EQ(reportsOf(kVol2).size(), 1u);
}

}  // namespace
}  // namespace plfm::agent
