#include "agent/volume_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "plfm/core/id.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"

namespace plfm::agent {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kBackupAttempts = 3;
constexpr auto kIdle = std::chrono::seconds(1);
// How long a finished record whose reports were all delivered is kept.
constexpr int64_t kKeepFinishedMs = int64_t{7} * 86'400'000;

template <class Rec>
bool allDelivered(const Rec& rec) {
  return std::all_of(rec.outbox.begin(), rec.outbox.end(),
                     [](const auto& o) { return o.delivered; });
}

// Errors the control plane will give again for the same report.
bool finalError(const Error& e) {
  return e.code() == errc::kNotFound || e.code() == errc::kFailedPrecondition ||
         e.code() == errc::kInvalidArgument;
}

std::string reasonOf(const Error& e) { return shownValue(e.message(), 500); }

int64_t msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0)
      .count();
}

Result<void> syncFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(errc::kIo, "opening " + path + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Error(errc::kIo, "fsync " + path + ": " + std::strerror(errno));
  return ok();
}

}  // namespace

// --- lifecycle ---

VolumeOps::VolumeOps(VolumeOpsDeps deps, VolumeBackups& backups)
    : deps_(std::move(deps)),
      backups_(backups),
      snapshots_dir_(deps_.state_dir + "/snapshots"),
      ops_dir_(deps_.state_dir + "/volume-ops") {}

VolumeOps::~VolumeOps() { stop(); }

Result<void> VolumeOps::start() {
  for (const std::string& dir : {snapshots_dir_, ops_dir_}) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Error(errc::kIo, "creating " + dir + ": " + std::strerror(errno));
    }
  }
  std::error_code ec;
  // A restore or drill a crash interrupted left a half-made file; the op
  // has no record, so it runs again from the start.
  for (const auto& e : fs::directory_iterator(deps_.volumes->dir(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(".restore-") || name.starts_with(".verify-")) fs::remove(e.path(), ec);
  }
  std::lock_guard lock(mu_);
  loadSnapshotRecords(snapshots_dir_, snaps_);
  loadOpRecords(ops_dir_, ops_);
  stopping_ = false;
  thread_ = std::thread([this] { loop(); });
  return ok();
}

void VolumeOps::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void VolumeOps::observe(std::vector<VolumeOp> ops, std::vector<NodeVolume> volumes) {
  {
    std::lock_guard lock(mu_);
    plan_ops_ = std::move(ops);
    plan_volumes_ = std::move(volumes);
  }
  cv_.notify_all();
}

size_t VolumeOps::undelivered() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [id, r] : snaps_)
    n +=
        std::count_if(r.outbox.begin(), r.outbox.end(), [](const auto& o) { return !o.delivered; });
  for (const auto& [id, r] : ops_)
    n +=
        std::count_if(r.outbox.begin(), r.outbox.end(), [](const auto& o) { return !o.delivered; });
  return n;
}

int64_t VolumeOps::nowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             deps_.clock->now().time_since_epoch())
      .count();
}

void VolumeOps::loop() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (stopping_) return;
    }
    if (backups_.configured() && !repo_ready_) {
      if (auto r = backups_.ensureInitialized(); r) {
        repo_ready_ = true;
      } else {
        log::warn("the backup repository cannot be opened; will retry",
                  {{"error", r.error().toString()}});
      }
    }
    flushReports();
    updateRpo();
    prune();
    if (auto op = nextOp()) {
      run(*op);
      continue;  // the next one at once
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, kIdle, [&] { return stopping_; });
  }
}

// --- reports ---

void VolumeOps::flushReports() {
  std::vector<std::pair<bool, std::string>> dirty;  // (snapshot?, id)
  std::unique_lock lock(mu_);
  auto deliver = [&](auto& outbox, const std::function<Result<bool>(const json&)>& send) {
    bool changed = false;
    for (auto& o : outbox) {
      if (o.delivered) continue;
      const json report = o.report;
      lock.unlock();
      auto r = send(report);
      lock.lock();
      if (!r && !finalError(r.error())) {
        log::warn("volume report not delivered; will resend", {{"error", r.error().toString()}});
        deps_.metrics->counter("plfm_agent_report_failures_total", "Status reports that failed")
            .inc();
        return changed;  // the rest waits: reports of one op go in order
      }
      if (!r) {
        log::error("the control plane refused a volume report; dropped",
                   {{"report", report.dump()}, {"error", r.error().toString()}});
      }
      o.delivered = true;
      changed = true;
    }
    return changed;
  };
  for (auto& [id, rec] : snaps_) {
    if (!deps_.report_snapshot) break;
    const std::string vol = rec.volume_id;
    const std::string snap = id;
    if (deliver(rec.outbox, [&](const json& j) -> Result<bool> {
          PLFM_ASSIGN_OR_RETURN(auto report, SnapshotReport::fromJson(j));
          return deps_.report_snapshot(vol, snap, report);
        })) {
      dirty.emplace_back(true, id);
    }
    if (stopping_) return;
  }
  for (auto& [id, rec] : ops_) {
    if (!deps_.report_op) break;
    const std::string op_id = id;
    if (deliver(rec.outbox, [&](const json& j) -> Result<bool> {
          PLFM_ASSIGN_OR_RETURN(auto report, VolumeOpReport::fromJson(j));
          return deps_.report_op(op_id, report);
        })) {
      dirty.emplace_back(false, id);
    }
    if (stopping_) return;
  }
  for (const auto& [snapshot, id] : dirty) {
    if (snapshot) {
      saveSnapshot(snaps_.at(id));
    } else {
      saveOp(ops_.at(id));
    }
  }
}

void VolumeOps::saveSnapshot(const SnapshotRecord& rec) {
  saveRecord(snapshots_dir_, rec.snapshot_id, rec.toJson());
}

void VolumeOps::saveOp(const OpRecord& rec) { saveRecord(ops_dir_, rec.op_id, rec.toJson()); }

// --- what to run next ---

std::optional<VolumeOp> VolumeOps::nextOp() {
  std::lock_guard lock(mu_);
  for (const auto& op : plan_ops_) {
    const bool done = op.kind == VolumeOp::Kind::kSnapshot ? snaps_.count(op.op_id) != 0
                                                           : ops_.count(op.op_id) != 0;
    if (!done) return op;
  }
  if (!backups_.configured() || !repo_ready_) return std::nullopt;
  const int64_t now = nowMs();
  // A snapshot taken but not backed up (a failed try, or a restart).
  for (const auto& [id, rec] : snaps_) {
    // Spaced out: at once, a minute after the first failure, two after the
    // second; then it stays a local snapshot.
    const bool due = rec.backup_attempts == 0 ||
                     now - rec.backup_attempt_ms >= int64_t{60'000} * rec.backup_attempts;
    if (rec.state == "taken" && rec.local && rec.backup_attempts < kBackupAttempts && due) {
      VolumeOp op;
      op.kind = VolumeOp::Kind::kSnapshot;
      op.op_id = id;
      op.snapshot_id = id;
      op.volume_id = rec.volume_id;
      return op;  // run() finds the record and backs it up
    }
  }
  for (const auto& v : plan_volumes_) {
    if (v.deleting || v.restoring) continue;
    if (!deps_.volumes->size(v.volume_id)) continue;
    int64_t newest = 0;                      // any attempt
    const SnapshotRecord* backed = nullptr;  // the newest backup we can drill
    for (const auto& [id, rec] : snaps_) {
      if (rec.volume_id != v.volume_id) continue;
      newest = std::max(newest, rec.taken_at_ms);
      if (rec.state == "backed_up" && !rec.backup_expired &&
          (!backed || rec.taken_at_ms > backed->taken_at_ms)) {
        backed = &rec;
      }
    }
    if (v.backup_every_seconds > 0 && now - newest >= v.backup_every_seconds * 1000) {
      VolumeOp op;
      op.kind = VolumeOp::Kind::kSnapshot;
      op.op_id = SnapshotId::generate().str();
      op.snapshot_id = op.op_id;
      op.volume_id = v.volume_id;
      op.source_volume_id = v.volume_id;
      return op;
    }
    if (!backed) continue;
    int64_t last_drill = backed->taken_at_ms;
    for (const auto& [id, rec] : ops_) {
      if (rec.kind == "verify" && rec.volume_id == v.volume_id) {
        last_drill = std::max(last_drill, rec.finished_ms);
      }
    }
    if (now - last_drill >= std::chrono::milliseconds(deps_.verify_every).count()) {
      VolumeOp op;
      op.kind = VolumeOp::Kind::kVerify;
      op.op_id = VolumeOpId::generate().str();
      op.volume_id = v.volume_id;
      op.source_volume_id = v.volume_id;
      op.snapshot_id = backed->snapshot_id;
      op.backup_id = backed->backup_id;
      op.sha256 = backed->sha256;
      op.from_backup = true;
      return op;
    }
  }
  return std::nullopt;
}

void VolumeOps::run(const VolumeOp& op) {
  // Only the schedule makes ops the plan does not list.
  bool planned = false;
  {
    std::lock_guard lock(mu_);
    planned = std::any_of(plan_ops_.begin(), plan_ops_.end(),
                          [&](const VolumeOp& p) { return p.op_id == op.op_id; });
  }
  if (!op.refusal.empty()) {
    refuse(op);
    return;
  }
  log::info("volume op", {{"op_id", op.op_id},
                          {"kind", std::string(volumeOpKindName(op.kind))},
                          {"volume_id", op.volume_id}});
  switch (op.kind) {
    case VolumeOp::Kind::kSnapshot:
      runSnapshot(op, planned ? "api" : "schedule");
      break;
    case VolumeOp::Kind::kRestore:
      runRestore(op);
      break;
    case VolumeOp::Kind::kVerify:
      runVerify(op);
      break;
  }
}

void VolumeOps::refuse(const VolumeOp& op) {
  const std::string reason = shownValue(op.refusal, 500);
  if (op.kind != VolumeOp::Kind::kSnapshot) {
    const std::string kind(volumeOpKindName(op.kind));
    finishOp(OpRecord{op.op_id, kind, op.volume_id, false, "", 0, {}},
             VolumeOpReport{kind, op.volume_id, op.snapshot_id, false, reason, "", 0});
    return;
  }
  SnapshotRecord rec;
  rec.snapshot_id = op.op_id;
  rec.volume_id = op.volume_id;
  rec.state = "failed";
  rec.taken_at_ms = nowMs();
  SnapshotReport r;
  r.state = "failed";
  r.reason = reason;
  if (deps_.report_snapshot) rec.outbox.push_back({r.toJson(), false});
  saveSnapshot(rec);
  std::lock_guard lock(mu_);
  snaps_[rec.snapshot_id] = std::move(rec);
}

// Drops the records nothing needs any more: every report delivered, no
// local file, the backup forgotten (or none made), a week old, and no
// longer in the plan.
void VolumeOps::prune() {
  std::lock_guard lock(mu_);
  const int64_t now = nowMs();
  auto planned = [&](const std::string& id) {
    return std::any_of(plan_ops_.begin(), plan_ops_.end(),
                       [&](const VolumeOp& p) { return p.op_id == id; });
  };
  std::error_code ec;
  for (auto it = snaps_.begin(); it != snaps_.end();) {
    const SnapshotRecord& r = it->second;
    const bool gone = !r.local && (r.backup_expired || r.state == "failed");
    if (gone && allDelivered(r) && now - r.taken_at_ms > kKeepFinishedMs && !planned(it->first)) {
      fs::remove(snapshots_dir_ + "/" + it->first + ".json", ec);
      it = snaps_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = ops_.begin(); it != ops_.end();) {
    const OpRecord& r = it->second;
    if (allDelivered(r) && now - r.finished_ms > kKeepFinishedMs && !planned(it->first)) {
      fs::remove(ops_dir_ + "/" + it->first + ".json", ec);
      it = ops_.erase(it);
    } else {
      ++it;
    }
  }
}

int VolumeOps::keepOf(const std::string& volume_id) const {
  std::lock_guard lock(mu_);
  for (const auto& v : plan_volumes_) {
    if (v.volume_id == volume_id) return v.backup_keep;
  }
  return NodeVolume{}.backup_keep;
}

// --- snapshot ---

void VolumeOps::runSnapshot(const VolumeOp& op, const std::string& origin) {
  std::optional<SnapshotRecord> existing;
  {
    std::lock_guard lock(mu_);
    if (auto it = snaps_.find(op.op_id); it != snaps_.end()) existing = it->second;
  }
  if (existing) {  // taken before: only the backup is left
    if (existing->state == "taken" && backups_.configured()) {
      backUp(existing->snapshot_id, keepOf(existing->volume_id));
    }
    return;
  }
  SnapshotRecord rec;
  rec.snapshot_id = op.op_id;
  rec.volume_id = op.volume_id;
  rec.origin = origin;
  rec.taken_at_ms = nowMs();
  const auto taken_at = deps_.clock->now();
  // A file without a record is a copy a crash interrupted: never reported,
  // so it is taken again.
  const std::string file = snapshots_dir_ + "/" + op.op_id + ".ext4";
  std::error_code ec;
  fs::remove(file, ec);
  auto snap = deps_.snapshot(op.volume_id, op.op_id);
  Result<std::string> sha = snap ? sha256OfFile(snap->path) : Result<std::string>("");
  if (!snap || !sha) {
    const Error& e = !snap ? snap.error() : sha.error();
    log::warn("a snapshot failed",
              {{"snapshot_id", op.op_id}, {"volume_id", op.volume_id}, {"error", e.toString()}});
    fs::remove(file, ec);
    rec.state = "failed";
    SnapshotReport r;
    r.state = "failed";
    r.reason = reasonOf(e);
    if (deps_.report_snapshot) rec.outbox.push_back({r.toJson(), false});
    saveSnapshot(rec);
    std::lock_guard lock(mu_);
    snaps_[rec.snapshot_id] = std::move(rec);
    return;
  }
  deps_.metrics->gauge("plfm_agent_volume_snapshot_freeze_ms", "The last snapshot's freeze window")
      .set(static_cast<double>(snap->freeze_ms));
  rec.state = "taken";
  rec.path = snap->path;
  rec.local = true;
  rec.sha256 = *sha;
  SnapshotReport r;
  r.state = "taken";
  r.origin = origin;
  r.method = snap->method;
  r.consistent = snap->consistent;
  r.freeze_ms = snap->freeze_ms;
  r.size_bytes = fs::file_size(snap->path, ec);
  r.sha256 = *sha;
  r.taken_at = toRfc3339(taken_at);
  if (deps_.report_snapshot) rec.outbox.push_back({r.toJson(), false});
  saveSnapshot(rec);
  {
    std::lock_guard lock(mu_);
    snaps_[rec.snapshot_id] = rec;
  }
  log::info("snapshot taken", {{"snapshot_id", rec.snapshot_id},
                               {"volume_id", rec.volume_id},
                               {"method", snap->method},
                               {"freeze_ms", snap->freeze_ms}});
  if (backups_.configured()) {
    flushReports();  // `taken` before `backed_up`, and soon
    backUp(rec.snapshot_id, keepOf(rec.volume_id));
  }
}

void VolumeOps::backUp(const std::string& snapshot_id, int keep) {
  std::string path;
  std::string volume_id;
  {
    std::lock_guard lock(mu_);
    const SnapshotRecord& rec = snaps_.at(snapshot_id);
    path = rec.path;
    volume_id = rec.volume_id;
  }
  bool given_up = false;
  const auto t0 = std::chrono::steady_clock::now();
  auto b =
      repo_ready_
          ? backups_.backup(path, volume_id, snapshot_id)
          : Result<BackupRecord>(Error(errc::kUnavailable, "the backup repository is not open"));
  {
    std::lock_guard lock(mu_);
    SnapshotRecord& rec = snaps_.at(snapshot_id);
    ++rec.backup_attempts;
    rec.backup_attempt_ms = nowMs();
    deps_.metrics->counter("plfm_agent_volume_backups_total", "Volume backups by result")
        .inc({{"result", b ? "ok" : "failed"}});
    if (!b) {
      log::warn("a volume backup failed", {{"snapshot_id", snapshot_id},
                                           {"volume_id", volume_id},
                                           {"attempt", rec.backup_attempts},
                                           {"error", b.error().toString()}});
      saveSnapshot(rec);
      given_up = rec.backup_attempts >= kBackupAttempts;
    }
  }
  if (!b) {
    // A repository that stays down must not fill the disk with snapshots.
    if (given_up) expireLocal(volume_id);
    return;
  }
  {
    std::lock_guard lock(mu_);
    SnapshotRecord& rec = snaps_.at(snapshot_id);
    rec.state = "backed_up";
    rec.backup_id = b->backup_id;
    SnapshotReport r;
    r.state = "backed_up";
    r.backup_id = b->backup_id;
    r.bytes_added = b->bytes_added;
    r.duration_ms = b->duration_ms > 0 ? b->duration_ms : msSince(t0);
    if (deps_.report_snapshot) rec.outbox.push_back({r.toJson(), false});
    saveSnapshot(rec);
  }
  log::info(
      "snapshot backed up",
      {{"snapshot_id", snapshot_id}, {"volume_id", volume_id}, {"bytes_added", b->bytes_added}});
  // Retention: restic keeps the newest `keep` of the volume.
  auto gone = backups_.forget(volume_id, keep);
  if (!gone) {
    log::warn("restic forget failed",
              {{"volume_id", volume_id}, {"error", gone.error().toString()}});
  } else if (!gone->empty()) {
    {
      std::lock_guard lock(mu_);
      for (const auto& id : *gone) {
        auto it = snaps_.find(id);
        if (it == snaps_.end() || it->second.backup_expired) continue;
        it->second.backup_expired = true;
        SnapshotReport x;
        x.state = "expired";
        x.local = !it->second.local;
        x.backup = true;
        if (deps_.report_snapshot) it->second.outbox.push_back({x.toJson(), false});
        saveSnapshot(it->second);
      }
    }
    if (auto p = backups_.prune(); !p) {
      log::warn("restic prune failed", {{"error", p.error().toString()}});
    }
  }
  expireLocal(volume_id);
  updateRpo();
}

// Keeps the newest local snapshot file of the volume (a fast local
// restore) and removes the older ones that are backed up or whose backup
// was given up.
void VolumeOps::expireLocal(const std::string& volume_id) {
  std::lock_guard lock(mu_);
  const SnapshotRecord* newest = nullptr;
  for (const auto& [id, rec] : snaps_) {
    if (rec.volume_id == volume_id && rec.local &&
        (!newest || rec.taken_at_ms > newest->taken_at_ms)) {
      newest = &rec;
    }
  }
  for (auto& [id, rec] : snaps_) {
    const bool shipped_or_given_up =
        rec.state == "backed_up" || rec.backup_attempts >= kBackupAttempts;
    if (rec.volume_id != volume_id || !rec.local || &rec == newest || !shipped_or_given_up) {
      continue;
    }
    std::error_code ec;
    fs::remove(rec.path, ec);
    if (ec) {
      log::warn("cannot remove a snapshot file", {{"snapshot_id", id}, {"error", ec.message()}});
      continue;
    }
    rec.local = false;
    SnapshotReport x;
    x.state = "expired";
    x.local = true;
    x.backup = rec.backup_expired;
    if (deps_.report_snapshot) rec.outbox.push_back({x.toJson(), false});
    saveSnapshot(rec);
  }
}

void VolumeOps::updateRpo() {
  std::map<std::string, int64_t> newest;  // volume -> consistent point of its newest backup
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, rec] : snaps_) {
      if (rec.state != "backed_up") continue;
      auto& n = newest[rec.volume_id];
      n = std::max(n, rec.taken_at_ms);
    }
  }
  const int64_t now = nowMs();
  for (const auto& [vol, at] : newest) {
    const int64_t seconds = std::max<int64_t>(0, now - at) / 1000;  // whole seconds
    deps_.metrics
        ->gauge("plfm_agent_volume_rpo_seconds",
                "Now minus the consistent point of the newest backup of each volume")
        .set(static_cast<double>(seconds), {{"volume_id", vol}});
  }
}

// --- restore and verify ---

// The restored image of `op` at `target`, checked against the snapshot's
// sha256 and by e2fsck; the file is removed on any error.
Result<std::string> VolumeOps::restoreInto(const VolumeOp& op, const std::string& target) {
  if (!op.from_backup) {
    const std::string file = snapshots_dir_ + "/" + op.snapshot_id + ".ext4";
    if (::access(file.c_str(), F_OK) != 0) {
      return Error(errc::kNotFound, "this node no longer holds snapshot " + op.snapshot_id);
    }
    PLFM_TRY(cloneOrCopy(file, target));
  } else {
    if (!backups_.configured()) {
      return Error(errc::kFailedPrecondition, "no backup repository is configured on this node");
    }
    if (!repo_ready_) return Error(errc::kUnavailable, "the backup repository cannot be opened");
    PLFM_TRY(backups_.restore(op.backup_id, op.snapshot_id, target));
  }
  auto checked = checkVolumeImage(target, op.sha256, deps_.e2fsck);
  if (!checked) {
    std::error_code ec;
    fs::remove(target, ec);
    return std::move(checked).error();
  }
  return op.sha256;
}

void VolumeOps::finishOp(OpRecord rec, const VolumeOpReport& report) {
  rec.ok = report.ok;
  rec.reason = report.reason;
  rec.finished_ms = nowMs();
  if (deps_.report_op) rec.outbox.push_back({report.toJson(), false});
  saveOp(rec);
  log::info("volume op done", {{"op_id", rec.op_id},
                               {"kind", rec.kind},
                               {"volume_id", rec.volume_id},
                               {"ok", report.ok},
                               {"reason", report.reason}});
  std::lock_guard lock(mu_);
  ops_[rec.op_id] = std::move(rec);
}

void VolumeOps::runRestore(const VolumeOp& op) {
  OpRecord rec{op.op_id, "restore", op.volume_id, false, "", 0, {}};
  VolumeOpReport report{"restore", op.volume_id, op.snapshot_id, false, "", "", 0};
  bool restoring = false;
  {
    std::lock_guard lock(mu_);
    for (const auto& v : plan_volumes_) {
      restoring = restoring || (v.volume_id == op.volume_id && v.restoring);
    }
  }
  // Only a volume the plan says is being restored is ever overwritten.
  if (!restoring) {
    report.reason = "volume " + op.volume_id + " is not restoring on this node";
    finishOp(std::move(rec), report);
    return;
  }
  const std::string tmp = deps_.volumes->dir() + "/.restore-" + op.op_id;
  const std::string claimant = "restore " + op.op_id;
  auto result = [&]() -> Result<uint64_t> {
    PLFM_TRY(restoreInto(op, tmp));
    // Grown to the target's size, never shrunk.
    std::error_code ec;
    const uint64_t have = fs::file_size(tmp, ec);
    if (ec) return Error(errc::kIo, "sizing the restored file: " + ec.message());
    if (have < op.size_bytes && ::truncate(tmp.c_str(), static_cast<off_t>(op.size_bytes)) != 0) {
      return Error(errc::kIo, std::string("growing the restored file: ") + std::strerror(errno));
    }
    PLFM_TRY(syncFile(tmp));
    // The volume's one writer while the file is swapped: no instance may
    // hold it (in place: its instance must be stopped).
    PLFM_TRY(deps_.volumes->claim(claimant, {WorkloadVolume{op.volume_id, op.volume_id, "/", 0}}));
    fs::rename(tmp, deps_.volumes->pathFor(op.volume_id), ec);
    deps_.volumes->release(claimant);
    if (ec) return Error(errc::kIo, "renaming the restored file: " + ec.message());
    return std::max(have, op.size_bytes);
  }();
  std::error_code ec;
  fs::remove(tmp, ec);
  if (!result) {
    report.reason = reasonOf(result.error());
    finishOp(std::move(rec), report);
    return;
  }
  report.ok = true;
  report.sha256 = op.sha256;
  finishOp(std::move(rec), report);
  flushReports();  // the op first: it makes the volume ready
  if (deps_.report_volume) deps_.report_volume(op.volume_id, {"ready", *result, ""});
}

// The control plane takes the report of an op id it does not know as a
// scheduled drill (origin "schedule").
void VolumeOps::runVerify(const VolumeOp& op) {
  OpRecord rec{op.op_id, "verify", op.volume_id, false, "", 0, {}};
  VolumeOpReport report{"verify", op.volume_id, op.snapshot_id, false, "", "", 0};
  const auto t0 = std::chrono::steady_clock::now();
  const std::string scratch = deps_.volumes->dir() + "/.verify-" + op.op_id;
  VolumeOp from_backup = op;
  from_backup.from_backup = true;
  auto r = restoreInto(from_backup, scratch);
  std::error_code ec;
  fs::remove(scratch, ec);
  report.duration_ms = msSince(t0);
  report.ok = r.has_value();
  if (!r) report.reason = reasonOf(r.error());
  deps_.metrics->counter("plfm_agent_volume_verifies_total", "Restore drills by result")
      .inc({{"result", report.ok ? "ok" : "failed"}});
  finishOp(std::move(rec), report);
}

}  // namespace plfm::agent
