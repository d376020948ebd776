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
#include "plfm/core/hex.h"
#include "plfm/core/id.h"
#include "plfm/core/process.h"
#include "plfm/core/sha256.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"
#include "plfm/testing/wait_for.h"
#include "support/fake_runtime.h"
#include "volume_test_ids.h"

namespace plfm::agent {
namespace {
using testing::kMiB;
using testing::kVol;
using testing::kVol2;
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kNode = "nod_01jd0000000000000000000001";

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
  void setVolumes(json volumes, json ops = json::array()) {
    std::lock_guard lock(mu_);
    volumes_ = std::move(volumes);
    ops_ = std::move(ops);
    ++version_;
  }
  // POST .../snapshots/{id} and .../volume-ops/{id}: (path after the node, body).
  [[nodiscard]] std::vector<std::pair<std::string, json>> opReports() const {
    std::lock_guard lock(mu_);
    return op_reports_;
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
      return http::Response::json(200, json{{"version", version_},
                                            {"instances", json::array()},
                                            {"volumes", volumes_},
                                            {"volume_ops", ops_}}
                                           .dump());
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
    if (r.method == "POST" && (r.path.find("/snapshots/") != std::string::npos ||
                               r.path.starts_with(prefix + "/volume-ops/"))) {
      std::lock_guard lock(mu_);
      if (fail_reports_) return http::Response::json(503, R"({"error":{"code":"unavailable"}})");
      op_reports_.emplace_back(r.path.substr(prefix.size()), json::parse(r.body, nullptr, false));
      return http::Response::json(200, R"({"applied":true})");
    }
    return http::Response::json(404, R"({"error":{"code":"not_found"}})");
  }

  mutable std::mutex mu_;
  json volumes_ = json::array();                          // guarded by mu_
  json ops_ = json::array();                              // guarded by mu_
  std::vector<std::pair<std::string, json>> op_reports_;  // guarded by mu_
  int64_t version_ = 1;                                   // guarded by mu_
  bool fail_reports_ = false;                             // guarded by mu_
  std::vector<std::pair<std::string, json>> reports_;     // guarded by mu_
  std::optional<json> heartbeat_;                         // guarded by mu_
  std::unique_ptr<http::Server> server_;
};

using plfm::testing::waitFor;

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
    opts_.state_dir = state;
    opts_.kernel = dir_.file("vmlinux");
    opts_.initramfs = dir_.file("initrd");
    opts_.scratch_mb = 8;
    opts_.manage_network = false;
    agent_ = std::make_unique<Agent>(opts_, std::make_unique<testing::FakeRuntime>());
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

  AgentOptions opts_;
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

// A backup repository in a directory: each backup a copy named by its id;
// corrupt() flips bytes in one, as a damaged repository would.
class FakeBackups final : public VolumeBackups {
 public:
  explicit FakeBackups(std::string dir) : dir_(std::move(dir)) { fs::create_directories(dir_); }
  [[nodiscard]] bool configured() const override { return true; }
  [[nodiscard]] Result<void> ensureInitialized() override { return ok(); }
  [[nodiscard]] Result<BackupRecord> backup(const std::string& file, const std::string& volume_id,
                                            const std::string& snapshot_id) override {
    Sha256 h;
    h.update(snapshot_id);
    BackupRecord rec{h.hexDigest(), fs::file_size(file), 1};
    fs::copy_file(file, dir_ + "/" + rec.backup_id);
    std::lock_guard lock(mu_);
    order_.emplace_back(volume_id, snapshot_id);
    return rec;
  }
  [[nodiscard]] Result<void> restore(const std::string& backup_id, const std::string&,
                                     const std::string& target) override {
    std::error_code ec;
    if (!fs::copy_file(dir_ + "/" + backup_id, target, ec)) {
      return Error(errc::kNotFound, "no backup " + backup_id);
    }
    return ok();
  }
  [[nodiscard]] Result<std::vector<std::string>> forget(const std::string& volume_id,
                                                        int keep) override {
    std::lock_guard lock(mu_);
    std::vector<std::string> gone;
    // The oldest beyond the newest `keep`.
    auto count = std::count_if(order_.begin(), order_.end(),
                               [&](const auto& e) { return e.first == volume_id; });
    for (const auto& [volume, snapshot] : order_) {
      if (volume == volume_id && count-- > keep) gone.push_back(snapshot);
    }
    std::erase_if(order_, [&](const auto& e) {
      return std::find(gone.begin(), gone.end(), e.second) != gone.end();
    });
    return gone;
  }
  [[nodiscard]] Result<void> prune() override { return ok(); }
  void corrupt(const std::string& backup_id) const {
    std::fstream f(dir_ + "/" + backup_id, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1024);
    f << "corrupted";
  }

 private:
  std::string dir_;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> order_;  // guarded by mu_
};

constexpr const char* kVol3 = "vol_01jd0000000000000000000003";
constexpr const char* kSnapA = "snap_01jd00000000000000000000a1";
constexpr const char* kSnapB = "snap_01jd00000000000000000000b1";
constexpr const char* kSnapC = "snap_01jd00000000000000000000c1";
constexpr const char* kRestoreOp = "vop_01jd0000000000000000000001";
constexpr const char* kVerifyOp = "vop_01jd0000000000000000000002";
constexpr const char* kBadRestoreOp = "vop_01jd0000000000000000000003";
constexpr const char* kLocalRestoreOp = "vop_01jd0000000000000000000004";

json snapshotOp(const char* snap, const char* vol) {
  return {{"op_id", snap}, {"kind", "snapshot"}, {"volume_id", vol}, {"freeze", true}};
}

class VolumeOpsAgentTest : public VolumeReportsTest {
 protected:
  void startWithBackups() {
    backups_ = new FakeBackups(dir_.file("repo"));
    agent_ = std::make_unique<Agent>(opts_, std::make_unique<testing::FakeRuntime>(),
                                     std::unique_ptr<VolumeBackups>(backups_));
    ASSERT_TRUE(agent_->start());
  }
  // The op reports whose path ends with `tail`, as their bodies.
  [[nodiscard]] std::vector<json> opReportsOf(const std::string& tail) const {
    std::vector<json> out;
    for (const auto& [path, body] : api_.opReports()) {
      if (path.ends_with(tail)) out.push_back(body);
    }
    return out;
  }
  [[nodiscard]] std::string snapFile(const char* snap) const {
    return dir_.file("state") + "/snapshots/" + snap + ".ext4";
  }
  FakeBackups* backups_ = nullptr;  // owned by agent_
};

json volumeEntry(const char* id, uint64_t size, const char* state, int keep = 96) {
  json e = entry(id, size, state);
  e["backup_every_seconds"] = 0;
  e["backup_keep"] = keep;
  return e;
}

// volume-mounts.md §Agent: a snapshot op is taken, hashed, reported, backed
// up and reported; retention forgets the older backup and removes the older
// local file (both reported expired); a restore op writes a new volume from
// the backup (checked, grown, renamed) and reports it and the volume; a
// verify of a corrupted backup reports ok=false; a restore into a volume
// the plan does not say is restoring is refused and leaves it untouched.
TEST_F(VolumeOpsAgentTest, SnapshotsAreBackedUpExpiredRestoredAndVerifiedEachReportedOnce) {
  api_.setVolumes(json::array({volumeEntry(kVol, 16 * kMiB, "ready", 1)}),
                  json::array({snapshotOp(kSnapA, kVol)}));
  startWithBackups();
  const std::string a = std::string("/volumes/") + kVol + "/snapshots/" + kSnapA;
  ASSERT_TRUE(waitFor([&] { return opReportsOf(a).size() == 2; })) << api_.opReports().size();
  auto ra = opReportsOf(a);
  EXPECT_EQ(ra[0]["state"], "taken");
  EXPECT_EQ(ra[0]["origin"], "api");
  EXPECT_EQ(ra[0]["freeze_ms"], -1) << "no instance held it";
  EXPECT_EQ(ra[0]["sha256"], sha256OfFile(snapFile(kSnapA)).value_or(""));
  EXPECT_EQ(ra[0]["size_bytes"], 16 * kMiB);
  EXPECT_EQ(ra[1]["state"], "backed_up");
  const std::string backup_a = ra[1]["backup_id"];
  EXPECT_TRUE(isLowerHex64(backup_a));

  // A second snapshot: keep 1 forgets A's backup, and A's local file goes.
  api_.setVolumes(json::array({volumeEntry(kVol, 16 * kMiB, "ready", 1)}),
                  json::array({snapshotOp(kSnapB, kVol)}));
  const std::string b = std::string("/volumes/") + kVol + "/snapshots/" + kSnapB;
  ASSERT_TRUE(waitFor([&] { return opReportsOf(b).size() == 2 && opReportsOf(a).size() == 4; }));
  ra = opReportsOf(a);
  EXPECT_EQ(ra[2], (json{{"state", "expired"}, {"local", false}, {"backup", true}}));
  EXPECT_EQ(ra[3], (json{{"state", "expired"}, {"local", true}, {"backup", true}}));
  EXPECT_FALSE(fs::exists(snapFile(kSnapA)));
  EXPECT_TRUE(fs::exists(snapFile(kSnapB))) << "the newest stays for a fast local restore";
  const json taken_b = opReportsOf(b)[0];
  const std::string backup_b = opReportsOf(b)[1]["backup_id"];

  // Restore B's backup into a new volume, grown to 32 MiB; a restore into a
  // volume that is not restoring is refused.
  const json restore = {{"op_id", kRestoreOp},     {"kind", "restore"},
                        {"volume_id", kVol2},      {"source_volume_id", kVol},
                        {"snapshot_id", kSnapB},   {"source", "backup"},
                        {"backup_id", backup_b},   {"sha256", taken_b["sha256"]},
                        {"size_bytes", 32 * kMiB}, {"in_place", false}};
  json bad = restore;
  bad["op_id"] = kBadRestoreOp;
  bad["volume_id"] = kVol;
  // From the node's own snapshot file (source local): no repository needed.
  json local = restore;
  local["op_id"] = kLocalRestoreOp;
  local["volume_id"] = kVol3;
  local["source"] = "local";
  local["backup_id"] = nullptr;
  local["size_bytes"] = 16 * kMiB;
  api_.setVolumes(json::array({volumeEntry(kVol, 16 * kMiB, "ready", 1),
                               volumeEntry(kVol2, 32 * kMiB, "restoring"),
                               volumeEntry(kVol3, 16 * kMiB, "restoring")}),
                  json::array({restore, bad, local}));
  ASSERT_TRUE(waitFor([&] { return opReportsOf(kLocalRestoreOp).size() == 1; }));
  EXPECT_EQ(opReportsOf(kLocalRestoreOp).at(0)["ok"], true) << opReportsOf(kLocalRestoreOp).at(0);
  EXPECT_EQ(sha256OfFile(fileOf(kVol3)).value_or(""), taken_b["sha256"]);
  const json r = opReportsOf(kRestoreOp).at(0);
  EXPECT_EQ(r["ok"], true) << r.dump();
  EXPECT_EQ(r["sha256"], taken_b["sha256"]);
  EXPECT_EQ(r["kind"], "restore");
  ASSERT_TRUE(waitFor([&] { return reportsOf(kVol2).size() == 1; }));
  EXPECT_EQ(reportsOf(kVol2).front(), "ready " + std::to_string(32 * kMiB));
  EXPECT_EQ(fs::file_size(fileOf(kVol2)), 32 * kMiB);
  const json refused = opReportsOf(kBadRestoreOp).at(0);
  EXPECT_EQ(refused["ok"], false);
  EXPECT_NE(refused.value("reason", "").find("is not restoring"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_.file("state") + "/volumes/.restore-" + kRestoreOp));

  // A verify of a corrupted backup: ok=false, the reason says why, the
  // scratch file is gone.
  backups_->corrupt(backup_b);
  const json verify = {{"op_id", kVerifyOp},    {"kind", "verify"},
                       {"volume_id", kVol},     {"snapshot_id", kSnapB},
                       {"backup_id", backup_b}, {"sha256", taken_b["sha256"]}};
  api_.setVolumes(
      json::array({volumeEntry(kVol, 16 * kMiB, "ready", 1), volumeEntry(kVol2, 32 * kMiB, "ready"),
                   volumeEntry(kVol3, 16 * kMiB, "ready")}),
      json::array({verify}));
  ASSERT_TRUE(waitFor([&] { return opReportsOf(kVerifyOp).size() == 1; }));
  const json v = opReportsOf(kVerifyOp)[0];
  EXPECT_EQ(v["ok"], false);
  EXPECT_NE(v.value("reason", "").find("sha256"), std::string::npos) << v.dump();
  EXPECT_FALSE(fs::exists(dir_.file("state") + "/volumes/.verify-" + kVerifyOp));

  // Every op ran once: the plan still listing them changes nothing.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(opReportsOf(a).size(), 4u);
  EXPECT_EQ(opReportsOf(b).size(), 2u);
  EXPECT_EQ(opReportsOf(kRestoreOp).size(), 1u);
  const std::string metrics = agent_->metricsRegistry().render();
  EXPECT_NE(metrics.find("plfm_agent_volume_backups_total{result=\"ok\"} 2"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find(std::string("plfm_agent_volume_rpo_seconds{volume_id=\"") + kVol),
            std::string::npos);
}

// A report the control plane did not take survives a restart: the new
// agent sends it from the snapshot's record instead of taking it again.
// A restoring volume gets no file and no report from the plan loop.
TEST_F(VolumeOpsAgentTest, UndeliveredReportsAreSentAfterARestartAndNothingIsTakenTwice) {
  api_.failReports(true);
  api_.setVolumes(json::array({volumeEntry(kVol, 16 * kMiB, "ready"),
                               volumeEntry(kVol3, 16 * kMiB, "restoring")}),
                  json::array({snapshotOp(kSnapC, kVol)}));
  startWithBackups();
  const std::string record = dir_.file("state") + "/snapshots/" + kSnapC + ".json";
  ASSERT_TRUE(waitFor([&] {
    auto text = readFile(record);
    return text && text->find("backed_up") != std::string::npos;
  }));
  const auto mtime = fs::last_write_time(snapFile(kSnapC));
  agent_->stop();
  agent_.reset();
  EXPECT_FALSE(fs::exists(fileOf(kVol3))) << "a restoring volume is its restore op's";
  api_.failReports(false);
  startWithBackups();
  const std::string c = std::string("/volumes/") + kVol + "/snapshots/" + kSnapC;
  ASSERT_TRUE(waitFor([&] { return opReportsOf(c).size() == 2; }));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(opReportsOf(c).size(), 2u);
  EXPECT_EQ(opReportsOf(c)[0]["state"], "taken");
  EXPECT_EQ(opReportsOf(c)[1]["state"], "backed_up");
  EXPECT_EQ(fs::last_write_time(snapFile(kSnapC)), mtime) << "not taken again";
  EXPECT_TRUE(reportsOf(kVol3).empty());
  EXPECT_FALSE(fs::exists(fileOf(kVol3)));
}

// With a repository, each ready volume with backup_every_seconds gets
// snapshots of its own (origin "schedule", ids the agent makes), and the
// newest backup is restored as a drill every verify_every (a verify report
// for an op id the agent made).
TEST_F(VolumeOpsAgentTest, TheScheduleSnapshotsAVolumeAndDrillsItsNewestBackup) {
  opts_.verify_every = 1s;
  json v = volumeEntry(kVol, 16 * kMiB, "ready");
  v["backup_every_seconds"] = 3600;
  api_.setVolumes(json::array({v, volumeEntry(kVol2, 16 * kMiB, "ready")}));
  startWithBackups();
  ASSERT_TRUE(waitFor([&] {
    const auto all = api_.opReports();
    return std::any_of(all.begin(), all.end(),
                       [](const auto& r) { return r.first.starts_with("/volume-ops/"); });
  }));
  std::vector<std::string> snapshots;
  for (const auto& [path, body] : api_.opReports()) {
    EXPECT_EQ(path.find(kVol2), std::string::npos) << "no schedule: " << path;
    if (body.value("state", "") == "taken") {
      EXPECT_EQ(body["origin"], "schedule");
      snapshots.push_back(path.substr(path.rfind('/') + 1));
    }
  }
  ASSERT_EQ(snapshots.size(), 1u) << "one per backup_every_seconds";
  EXPECT_TRUE(SnapshotId::parse(snapshots[0]));
  std::string drill;
  for (const auto& [path, body] : api_.opReports()) {
    if (path.starts_with("/volume-ops/")) {
      drill = path.substr(path.rfind('/') + 1);
      EXPECT_EQ(body["kind"], "verify");
      EXPECT_EQ(body["ok"], true) << body.dump();
      EXPECT_EQ(body["snapshot_id"], snapshots[0]);
      EXPECT_EQ(body["volume_id"], kVol);
    }
  }
  EXPECT_TRUE(VolumeOpId::parse(drill)) << drill;
}

// Without a repository, snapshots stay local (taken, never backed up) and
// a verify or a restore from a backup fails saying so.
TEST_F(VolumeOpsAgentTest, WithoutARepositorySnapshotsStayLocalAndBackupOpsFailSayingSo) {
  const json verify = {{"op_id", kVerifyOp},
                       {"kind", "verify"},
                       {"volume_id", kVol},
                       {"snapshot_id", kSnapA},
                       {"backup_id", std::string(64, 'b')},
                       {"sha256", std::string(64, 'c')}};
  // Refused at the edge but naming itself: reported failed, so it does not
  // stay requested; the reason names the field.
  json bad_snapshot = snapshotOp(kSnapB, kVol);
  bad_snapshot["freeze"] = "yes";
  json bad_restore = {{"op_id", kBadRestoreOp},   {"kind", "restore"},      {"volume_id", kVol2},
                      {"source_volume_id", kVol}, {"snapshot_id", kSnapA},  {"source", "local"},
                      {"sha256", "latest"},       {"size_bytes", 16 * kMiB}};
  api_.setVolumes(json::array({volumeEntry(kVol, 16 * kMiB, "ready")}),
                  json::array({snapshotOp(kSnapA, kVol), verify, bad_snapshot, bad_restore}));
  ASSERT_TRUE(agent_->start());  // the fixture's agent: restic, not configured
  ASSERT_TRUE(waitFor([&] { return opReportsOf(kBadRestoreOp).size() == 1; }));
  EXPECT_EQ(opReportsOf(kBadRestoreOp)[0]["ok"], false);
  EXPECT_NE(opReportsOf(kBadRestoreOp)[0].value("reason", "").find(".sha256"), std::string::npos);
  EXPECT_FALSE(opReportsOf(kBadRestoreOp)[0].contains("sha256"));
  const auto b = opReportsOf(std::string("/snapshots/") + kSnapB);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0]["state"], "failed");
  EXPECT_NE(b[0].value("reason", "").find(".freeze"), std::string::npos);
  EXPECT_FALSE(fs::exists(snapFile(kSnapB)));
  ASSERT_TRUE(waitFor([&] { return opReportsOf(kVerifyOp).size() == 1; }));
  const json v = opReportsOf(kVerifyOp)[0];
  EXPECT_EQ(v["ok"], false);
  EXPECT_EQ(v["reason"], "no backup repository is configured on this node");
  std::this_thread::sleep_for(300ms);
  const auto a = opReportsOf(std::string("/snapshots/") + kSnapA);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0]["state"], "taken");
  EXPECT_TRUE(fs::exists(snapFile(kSnapA)));
}

}  // namespace
}  // namespace plfm::agent
