// InstanceWorker's volume operations on a running VM (volume-mounts.md
// §Node side "Extend", §Snapshots): online extend and snapshots. The rest of
// the worker is in instance_worker.cc.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "agent/errors.h"
#include "agent/guest_config.h"
#include "agent/instance_worker.h"
#include "agent/worker_util.h"
#include "image/fs_util.h"
#include "plfm/core/log.h"
#include "runtime/errors.h"

namespace plfm::agent {
namespace gp = guest_proto;
using namespace worker_internal;  // NOLINT(google-build-using-namespace)
using std::chrono::milliseconds;

Result<void> InstanceWorker::enqueueSnapshot(std::shared_ptr<SnapshotJob> job) {
  std::lock_guard lock(mu_);
  if (rec_.phase != Phase::kRunning || done_) {
    return Error(errc::kUnavailable, "instance " + rec_.workload.instance_id + " is not running");
  }
  snapshot_jobs_.push_back(std::move(job));
  woken_ = true;
  cv_.notify_all();
  return ok();
}

void InstanceWorker::failSnapshots(const std::string& why) {
  std::vector<std::shared_ptr<SnapshotJob>> jobs;
  {
    std::lock_guard lock(mu_);
    jobs.swap(snapshot_jobs_);
  }
  for (auto& job : jobs) job->done.set_value(Error(errc::kUnavailable, why));
}

void InstanceWorker::serveSnapshots() {
  while (true) {
    std::shared_ptr<SnapshotJob> job;
    {
      std::lock_guard lock(mu_);
      if (snapshot_jobs_.empty()) return;
      job = snapshot_jobs_.front();
      snapshot_jobs_.erase(snapshot_jobs_.begin());
    }
    if (!rec_.vm) {
      job->done.set_value(Error(errc::kUnavailable, "the instance has no VM"));
      continue;
    }
    job->done.set_value(takeSnapshot(*job, *rec_.vm));
  }
}

Result<gp::Frame> InstanceWorker::awaitVolumeAnswer(uint32_t id, gp::FrameType type,
                                                    milliseconds timeout) {
  const auto deadline = steadyNow() + timeout;
  while (steadyNow() < deadline) {
    PLFM_ASSIGN_OR_RETURN(auto frame, channel_.read(kTick));
    if (!frame) continue;
    if (frame->type == type || frame->type == gp::FrameType::kVolumeFailed) {
      // Every volume answer starts with the request's id.
      const uint32_t answer_id =
          frame->payload.size() >= 4
              ? (uint32_t{static_cast<uint8_t>(frame->payload[0])} << 24) |
                    (uint32_t{static_cast<uint8_t>(frame->payload[1])} << 16) |
                    (uint32_t{static_cast<uint8_t>(frame->payload[2])} << 8) |
                    uint32_t{static_cast<uint8_t>(frame->payload[3])}
              : 0;
      if (answer_id == id && frame->type == type) return std::move(*frame);
      if (answer_id == id) {
        auto failed = gp::decodeVolumeFailed(frame->payload);
        return Error(errc::kVolumeOpFailed,
                     "the guest: " + printableOrEscaped(failed ? failed->message.substr(0, 400)
                                                               : std::string("(malformed)")));
      }
    }
    handleFrame(*frame);
  }
  return Error(errc::kVolumeOpTimeout,
               "the guest did not answer " + gp::frameTypeName(type) + " in time");
}

Result<std::string> InstanceWorker::snapshotCopy(const runtime::VmHandle& vm,
                                                 const runtime::VmDrive& drive,
                                                 const std::string& target,
                                                 std::optional<std::string>& backup_job) {
  PLFM_ASSIGN_OR_RETURN(bool cloned, tryClone(drive.path, target));
  if (cloned) return std::string("reflink");
  // No reflinks: QEMU's backup job into the file (sized like the volume),
  // whose point in time is its start.
  const int fd = ::open(target.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Error(errc::kIo, "open " + target + ": " + std::strerror(errno));
  struct stat st {};
  Result<std::string> started = Error(errc::kIo, "stat " + drive.path);
  if (::stat(drive.path.c_str(), &st) == 0 && ::ftruncate(fd, st.st_size) == 0) {
    started = host_.runtime().startBackup(vm, drive, fd);
  }
  ::close(fd);
  if (started) {
    backup_job = *started;
    return std::string("blockdev-backup");
  }
  if (!started.error().is(runtime::errc::kUnsupported)) return std::move(started).error();
  // A VMM without backup jobs (Firecracker): copy while the guest is frozen.
  PLFM_TRY(image::copySparseFile(drive.path, target, 0600));
  return std::string("copy");
}

Result<SnapshotResult> InstanceWorker::takeSnapshot(const SnapshotJob& job,
                                                    const runtime::VmHandle& vm) {
  std::vector<WorkloadVolume> volumes;
  uint32_t revision;
  {
    std::lock_guard lock(mu_);
    volumes = rec_.workload.volumes;
    revision = rec_.volume_revision;
  }
  auto it = std::find_if(volumes.begin(), volumes.end(),
                         [&](const WorkloadVolume& v) { return v.volume_id == job.volume_id; });
  if (it == volumes.end()) {
    return Error(errc::kNotFound, "the instance does not hold volume " + job.volume_id);
  }
  if (revision == 0) {
    return Error(errc::kSnapshotUnsupported,
                 "the instance's guest cannot freeze a volume (its HELLO has no volume_revision)");
  }
  const runtime::VmDrive drive{volumeDriveId(static_cast<size_t>(it - volumes.begin())),
                               host_.volumes().pathFor(job.volume_id), false};
  PLFM_ASSIGN_OR_RETURN(std::string serial, host_.runtime().diskSerial(drive));
  const uint32_t id = next_freeze_id_++;
  auto freeze = gp::encode(gp::Freeze{id, serial});
  if (!freeze) return fromGuestProto(freeze.error());
  SnapshotResult result;
  result.path = job.target;
  const auto t0 = steadyNow();
  PLFM_TRY(sendToGuest(*freeze));
  PLFM_TRY(awaitVolumeAnswer(id, gp::FrameType::kFrozen, std::chrono::seconds(10)));
  const auto t_copy = steadyNow();
  std::optional<std::string> backup_job;
  auto copied = snapshotCopy(vm, drive, job.target, backup_job);
  result.copy_ms = msBetween(t_copy, steadyNow());
  // THAW whatever the copy did: the guest must not wait for its limit.
  auto thaw = sendToGuest(gp::encodeThaw(gp::VolumeOpId{id}));
  auto thawed = thaw ? awaitVolumeAnswer(id, gp::FrameType::kThawed, std::chrono::seconds(10))
                     : Result<gp::Frame>(thaw.error());
  result.freeze_ms = msBetween(t0, steadyNow());
  if (backup_job) {
    // After the thaw: the job copies in the background from its start's
    // point in time.
    const auto t_job = steadyNow();
    auto finished = host_.runtime().finishBackup(vm, *backup_job, std::chrono::minutes(30));
    result.copy_ms += msBetween(t_job, steadyNow());
    if (!finished) copied = std::move(finished).error();
  }
  if (!copied) {
    ::unlink(job.target.c_str());
    return std::move(copied).error().context("snapshot copy");
  }
  result.method = *copied;
  if (!thawed) return std::move(thawed).error().context("THAW");
  auto kind = gp::decodeThawed(thawed->payload);
  result.consistent = kind && kind->kind == gp::ThawKind::kOnThaw;
  log::info("volume snapshot taken", {{"instance_id", rec_.workload.instance_id},
                                      {"volume_id", job.volume_id},
                                      {"method", result.method},
                                      {"freeze_ms", result.freeze_ms},
                                      {"copy_ms", result.copy_ms},
                                      {"consistent", result.consistent}});
  return result;
}

void InstanceWorker::volumesStarted(const Workload& w) {
  std::vector<uint64_t> sizes;
  for (const auto& v : w.volumes) {
    const uint64_t size = host_.volumes().size(v.volume_id).value_or(0);
    sizes.push_back(size);
    if (size != 0) host_.reportVolume(v.volume_id, {"ready", size, ""});
  }
  extender_.started(w.volumes, sizes);
}

void InstanceWorker::extendVolumes(const runtime::VmHandle& vm) {
  uint32_t revision;
  std::vector<WorkloadVolume> volumes;
  {
    std::lock_guard lock(mu_);
    // A same-generation plan change (a volume's new size) applies to the
    // running VM; a new generation waits for it to stop (absorbUpdates).
    if (pending_ && pending_->generation == rec_.workload.generation) {
      pending_->raw = pending_->raw.is_null() ? rec_.workload.raw : pending_->raw;
      rec_.workload = std::move(*pending_);
      pending_.reset();
    }
    revision = rec_.volume_revision;
    volumes = rec_.workload.volumes;
  }
  // A guest without online resize gets the new size at its next start.
  if (revision == 0 || volumes.empty()) return;
  for (const auto& done : extender_.expire(steadyNow())) extendDone(done);
  for (const auto& r : extender_.due(volumes, steadyNow())) {
    // Grow the file (never shrink), tell the VMM, then ask the guest.
    const runtime::VmDrive drive{volumeDriveId(r.index), host_.volumes().pathFor(r.volume_id),
                                 false};
    auto act = [&]() -> Result<std::string> {
      PLFM_ASSIGN_OR_RETURN(uint64_t size, host_.volumes().ensure(r.volume_id, r.size_bytes));
      PLFM_TRY(host_.runtime().resizeDrive(vm, drive, size));
      PLFM_ASSIGN_OR_RETURN(std::string serial, host_.runtime().diskSerial(drive));
      auto frame = gp::encode(gp::ResizeVolume{r.id, size, serial});
      if (!frame) return fromGuestProto(frame.error());
      PLFM_TRY(sendToGuest(*frame));
      return serial;
    };
    auto sent = act();
    if (!sent) {
      if (auto done = extender_.answered(r.id, sent.error().message())) extendDone(*done);
      continue;
    }
    log::info("growing a running instance's volume", {{"instance_id", rec_.workload.instance_id},
                                                      {"volume_id", r.volume_id},
                                                      {"size_bytes", r.size_bytes}});
  }
}

void InstanceWorker::extendDone(const VolumeExtender::Outcome& outcome) {
  const std::string& id = rec_.workload.instance_id;
  if (outcome.error.empty()) {
    log::info("volume extended online", {{"instance_id", id},
                                         {"volume_id", outcome.volume_id},
                                         {"size_bytes", outcome.size_bytes}});
    log_->append(
        "platform", unixNs(host_.clock()),
        "volume " + outcome.name + " grew to " + std::to_string(outcome.size_bytes) + " bytes\n");
    host_.reportVolume(outcome.volume_id, {"ready", outcome.size_bytes, ""});
    return;
  }
  // Not fatal: the file has the new size, so the next start grows the
  // filesystem; until then the volume is reported at its old size.
  log::warn("online volume extend failed",
            {{"instance_id", id}, {"volume_id", outcome.volume_id}, {"error", outcome.error}});
  log_->append("platform", unixNs(host_.clock()),
               "volume " + outcome.name + " could not grow to " +
                   std::to_string(outcome.size_bytes) +
                   " bytes until the next start: " + outcome.error + "\n");
}

}  // namespace plfm::agent
