// NodePlan.volume_ops and the backup policy of NodePlan.volumes at the edge
// (volume-mounts.md "NodePlan"), and the JSON of the two agent routes the
// executor reports through ("Agent routes"): every field typed, hostile
// entries refused with the field named.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "agent/cp_client.h"
#include "agent/volume_ops.h"
#include "agent/workload_check.h"
#include "plfm/testing/temp_dir.h"
#include "volume_test_ids.h"

namespace plfm::agent {
namespace {
using nlohmann::json;
using testing::kMiB;
using testing::kVol;
using testing::kVol2;

constexpr const char* kSnap = "snap_01jd0000000000000000000001";
constexpr const char* kOp = "vop_01jd0000000000000000000001";
const std::string kHex(64, 'a');

json restoreOp() {
  return {{"op_id", kOp},
          {"kind", "restore"},
          {"volume_id", kVol2},
          {"source_volume_id", kVol},
          {"snapshot_id", kSnap},
          {"source", "backup"},
          {"backup_id", kHex},
          {"sha256", kHex},
          {"size_bytes", 32 * kMiB},
          {"in_place", false}};
}

// The error of parsing `j`, or "" when it parsed.
std::string refusal(const json& j) {
  auto r = parseVolumeOp(j);
  return r ? "" : r.error().message();
}

TEST(VolumeOpParse, TheThreeKindsParseIntoTypedOps) {
  auto s = parseVolumeOp(
      {{"op_id", kSnap}, {"kind", "snapshot"}, {"volume_id", kVol}, {"freeze", false}});
  ASSERT_TRUE(s) << s.error().toString();
  EXPECT_EQ(s->kind, VolumeOp::Kind::kSnapshot);
  EXPECT_EQ(s->snapshot_id, kSnap);
  EXPECT_FALSE(s->freeze);

  auto r = parseVolumeOp(restoreOp());
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->kind, VolumeOp::Kind::kRestore);
  EXPECT_TRUE(r->from_backup);
  EXPECT_EQ(r->source_volume_id, kVol);
  EXPECT_EQ(r->size_bytes, 32 * kMiB);

  json local = restoreOp();
  local["source"] = "local";
  local["backup_id"] = nullptr;
  auto l = parseVolumeOp(local);
  ASSERT_TRUE(l) << l.error().toString();
  EXPECT_FALSE(l->from_backup);
  EXPECT_TRUE(l->backup_id.empty());

  auto v = parseVolumeOp({{"op_id", kOp},
                          {"kind", "verify"},
                          {"volume_id", kVol},
                          {"snapshot_id", kSnap},
                          {"backup_id", kHex},
                          {"sha256", kHex}});
  ASSERT_TRUE(v) << v.error().toString();
  EXPECT_EQ(v->kind, VolumeOp::Kind::kVerify);
  EXPECT_EQ(v->backup_id, kHex);
}

TEST(VolumeOpParse, HostileEntriesAreRefusedNamingTheField) {
  EXPECT_NE(refusal(json::array()), "");
  EXPECT_NE(refusal("snapshot"), "");
  const std::vector<std::pair<std::string, json>> bad = {
      {"op_id", "../../etc/passwd"},
      {"op_id", kSnap},  // a restore's op id is a vop_ id
      {"kind", "rm"},
      {"volume_id", "vol_../../x"},
      {"source_volume_id", 7},
      {"snapshot_id", "snap_01jd0000000000000000000001/../x"},
      {"source", "sftp:evil"},
      {"backup_id", "latest"},
      {"backup_id", std::string(64, 'A')},  // restic ids are lowercase
      {"sha256", kHex + "0"},
      {"sha256", std::string(63, 'a') + "\n"},
      {"size_bytes", -1},
      {"size_bytes", 1},
      {"size_bytes", uint64_t{17} << 40},
      {"in_place", "yes"},
  };
  for (const auto& [field, value] : bad) {
    json j = restoreOp();
    j[field] = value;
    const std::string why = refusal(j);
    EXPECT_NE(why.find("volume_ops[]." + field), std::string::npos)
        << field << "=" << value.dump() << ": " << why;
  }
  json missing = restoreOp();
  missing.erase("sha256");
  EXPECT_NE(refusal(missing).find(".sha256"), std::string::npos);
  json in_place = restoreOp();
  in_place["in_place"] = true;  // in place is the snapshot's own volume
  EXPECT_NE(refusal(in_place).find(".source_volume_id"), std::string::npos);
  EXPECT_NE(refusal({{"op_id", kOp}, {"kind", "snapshot"}, {"volume_id", kVol}}).find(".op_id"),
            std::string::npos)
      << "a snapshot's op id is its snap_ id";
  EXPECT_NE(refusal({{"op_id", kOp},
                     {"kind", "verify"},
                     {"volume_id", kVol},
                     {"snapshot_id", kSnap},
                     {"sha256", kHex}})
                .find(".backup_id"),
            std::string::npos);
}

TEST(NodeVolumeParse, TheBackupPolicyAndRestoringAreTyped) {
  auto v = parseNodeVolume({{"volume_id", kVol},
                            {"size_bytes", 16 * kMiB},
                            {"state", "restoring"},
                            {"backup_every_seconds", 900},
                            {"backup_keep", 5}});
  ASSERT_TRUE(v) << v.error().toString();
  EXPECT_TRUE(v->restoring);
  EXPECT_FALSE(v->deleting);
  EXPECT_EQ(v->backup_every_seconds, 900);
  EXPECT_EQ(v->backup_keep, 5);
  auto d = parseNodeVolume({{"volume_id", kVol}, {"size_bytes", 16 * kMiB}, {"state", "ready"}});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->backup_every_seconds, 0) << "absent: no schedule";
  EXPECT_EQ(d->backup_keep, 96);
  for (const auto& [field, value] :
       std::vector<std::pair<std::string, json>>{{"backup_every_seconds", 1},
                                                 {"backup_every_seconds", 86'401},
                                                 {"backup_every_seconds", "15m"},
                                                 {"backup_keep", 0},
                                                 {"backup_keep", 1001},
                                                 {"state", "restored"}}) {
    json j = {{"volume_id", kVol}, {"size_bytes", 16 * kMiB}, {"state", "ready"}};
    j[field] = value;
    auto r = parseNodeVolume(j);
    ASSERT_FALSE(r) << field;
    EXPECT_NE(r.error().message().find("volumes[]." + field), std::string::npos)
        << r.error().message();
  }
}

TEST(VolumeOpReports, TheBodiesAreTheContractsShapes) {
  SnapshotReport taken;
  taken.state = "taken";
  taken.origin = "schedule";
  taken.method = "copy";
  taken.consistent = true;
  taken.freeze_ms = 12;
  taken.size_bytes = 16 * kMiB;
  taken.sha256 = kHex;
  taken.taken_at = "2026-12-06T15:00:00.000000Z";
  EXPECT_EQ(taken.toJson(), (json{{"state", "taken"},
                                  {"origin", "schedule"},
                                  {"method", "copy"},
                                  {"consistent", true},
                                  {"freeze_ms", 12},
                                  {"size_bytes", 16 * kMiB},
                                  {"sha256", kHex},
                                  {"taken_at", "2026-12-06T15:00:00.000000Z"}}));
  EXPECT_EQ(SnapshotReport::fromJson(taken.toJson()).value(), taken);
  SnapshotReport failed;
  failed.state = "failed";
  failed.reason = std::string(600, 'x');
  EXPECT_EQ(failed.toJson()["reason"].get<std::string>().size(), 512u);
  SnapshotReport backed;
  backed.state = "backed_up";
  backed.backup_id = kHex;
  backed.bytes_added = 10;
  backed.duration_ms = 5;
  EXPECT_EQ(
      backed.toJson(),
      (json{{"state", "backed_up"}, {"backup_id", kHex}, {"bytes_added", 10}, {"duration_ms", 5}}));
  SnapshotReport expired;
  expired.state = "expired";
  expired.local = true;
  EXPECT_EQ(expired.toJson(), (json{{"state", "expired"}, {"local", true}, {"backup", false}}));

  VolumeOpReport restore{"restore", kVol2, kSnap, true, "", kHex, 0};
  EXPECT_EQ(restore.toJson(), (json{{"kind", "restore"},
                                    {"volume_id", kVol2},
                                    {"snapshot_id", kSnap},
                                    {"ok", true},
                                    {"reason", ""},
                                    {"sha256", kHex}}));
  VolumeOpReport refused{"restore", kVol2, kSnap, false, "no such snapshot", "", 0};
  EXPECT_FALSE(refused.toJson().contains("sha256")) << "a failed restore hashes nothing";
  VolumeOpReport verify{"verify", kVol, kSnap, false, "bad", "", 40};
  EXPECT_EQ(verify.toJson()["duration_ms"], 40);
  EXPECT_FALSE(verify.toJson().contains("sha256"));
  EXPECT_EQ(VolumeOpReport::fromJson(verify.toJson()).value(), verify);
}

// No backups: a repository that is not configured.
class NoBackups final : public VolumeBackups {
 public:
  [[nodiscard]] bool configured() const override { return false; }
  [[nodiscard]] Result<void> ensureInitialized() override { return ok(); }
  [[nodiscard]] Result<BackupRecord> backup(const std::string&, const std::string&,
                                            const std::string&) override {
    return Error(errc::kFailedPrecondition, "none");
  }
  [[nodiscard]] Result<void> restore(const std::string&, const std::string&,
                                     const std::string&) override {
    return Error(errc::kFailedPrecondition, "none");
  }
  [[nodiscard]] Result<std::vector<std::string>> forget(const std::string&, int) override {
    return Error(errc::kFailedPrecondition, "none");
  }
  [[nodiscard]] Result<void> prune() override { return ok(); }
};

// An in-place restore while an instance holds the volume is refused, and the
// volume's file is left exactly as it was; once the instance lets go, the
// same kind of op (a new op id) restores it.
TEST(VolumeOpsExecutor,
     AnInPlaceRestoreWaitsForNoInstanceToHoldTheVolumeAndRecordsArePrunedAfterAWeek) {
  plfm::testing::TempDir dir("vops");
  VolumeStore volumes(dir.file("volumes"));
  ASSERT_TRUE(volumes.open());
  ASSERT_TRUE(volumes.ensure(kVol, 16 * kMiB));
  ASSERT_EQ(::mkdir(dir.file("snapshots").c_str(), 0700), 0);
  const std::string snap_file = dir.file("snapshots") + "/" + kSnap + ".ext4";
  ASSERT_TRUE(cloneOrCopy(volumes.pathFor(kVol), snap_file));
  const std::string sha = sha256OfFile(snap_file).value();
  // The volume changes after the snapshot.
  ASSERT_EQ(::truncate(volumes.pathFor(kVol).c_str(), 20 * kMiB), 0);
  const std::string before = sha256OfFile(volumes.pathFor(kVol)).value();

  metrics::Registry metrics;
  FakeClock clock(std::chrono::system_clock::now());
  std::mutex mu;
  std::vector<std::pair<std::string, VolumeOpReport>> reports;
  VolumeOpsDeps deps;
  deps.state_dir = dir.path();
  deps.volumes = &volumes;
  deps.metrics = &metrics;
  deps.clock = &clock;
  deps.snapshot = [](const std::string&, const std::string&) -> Result<SnapshotResult> {
    return Error(errc::kFailedPrecondition, "not in this test");
  };
  deps.report_op = [&](const std::string& op_id, const VolumeOpReport& r) -> Result<bool> {
    std::lock_guard lock(mu);
    reports.emplace_back(op_id, r);
    return true;
  };
  NoBackups backups;
  VolumeOps ops(deps, backups);
  ASSERT_TRUE(ops.start());
  auto reportOf = [&](const std::string& op_id) -> std::optional<VolumeOpReport> {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(mu);
        for (const auto& [id, r] : reports) {
          if (id == op_id) return r;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  };
  auto restore = [&](const char* op_id) {
    json j = restoreOp();
    j["op_id"] = op_id;
    j["volume_id"] = kVol;
    j["source"] = "local";
    j["backup_id"] = nullptr;
    j["sha256"] = sha;
    j["size_bytes"] = 16 * kMiB;
    j["in_place"] = true;
    return parseVolumeOp(j).value();
  };
  const NodeVolume restoring{kVol, 16 * kMiB, false, true, 0, 96};

  ASSERT_TRUE(volumes.claim("inst_01jd0000000000000000000001",
                            {WorkloadVolume{kVol, "data-0", "/data", 16 * kMiB}}));
  ops.observe({restore(kOp)}, {restoring});
  auto held = reportOf(kOp);
  ASSERT_TRUE(held);
  EXPECT_FALSE(held->ok);
  EXPECT_NE(held->reason.find("inst_01jd0000000000000000000001"), std::string::npos)
      << held->reason;
  EXPECT_EQ(sha256OfFile(volumes.pathFor(kVol)).value(), before) << "the old file is untouched";

  volumes.release("inst_01jd0000000000000000000001");
  const char* again = "vop_01jd0000000000000000000009";
  ops.observe({restore(kOp), restore(again)}, {restoring});
  auto done = reportOf(again);
  ASSERT_TRUE(done);
  EXPECT_TRUE(done->ok) << done->reason;
  EXPECT_EQ(sha256OfFile(volumes.pathFor(kVol)).value(), sha);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(reports.size(), 2u) << "each op id once";
  }

  // A week on, out of the plan and every report delivered: the records go.
  const std::string record = dir.file("volume-ops") + "/" + again + ".json";
  EXPECT_TRUE(std::filesystem::exists(record));
  ops.observe({}, {});
  clock.advance(std::chrono::hours(24 * 8));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::filesystem::exists(record) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(std::filesystem::exists(record));
  ops.stop();
}

}  // namespace
}  // namespace plfm::agent
