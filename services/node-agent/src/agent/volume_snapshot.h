// Agent-local volume snapshots (docs/specs/runtime/volume-mounts.md
// §Snapshots), the primitive a control-plane route and the backup schedule
// will build on: FREEZE the volume in the guest, take a point-in-time copy of
// its file into STATE/snapshots/<snapshot_id>.ext4, THAW, and measure the
// freeze window (FREEZE sent to THAWED received).
//
// The copy is a reflink (FICLONE, O(metadata)) where the volumes directory
// supports it (XFS, btrfs); else, under QEMU, a blockdev-backup job
// (sync=full into the snapshot file, passed as an fd): the point in time is
// the job's start, so the guest is thawed right after it and the job copies
// in the background; else (Firecracker, which has no backup job) a sparse
// copy made while the guest holds the freeze: with cache=none every write
// FIFREEZE flushed is in the file and none reaches it until THAW, and the
// guest's 5 s self-thaw bounds that window (the snapshot then says
// consistent = false).
//
//   PLFM_ASSIGN_OR_RETURN(auto snap, agent.snapshotVolume(volume_id, "snap_1"));
//   snap.freeze_ms, snap.method ("reflink" | "copy"), snap.consistent
#pragma once

#include <cstdint>
#include <future>
#include <string>
#include <string_view>

#include "plfm/core/result.h"

namespace plfm::agent {

struct SnapshotResult {
  std::string path;
  std::string method;      // "reflink", "blockdev-backup" or "copy"
  int64_t freeze_ms = -1;  // FREEZE sent to THAWED received; -1: no freeze (no VM held it)
  int64_t copy_ms = 0;
  // The guest held the freeze for the whole copy (THAWED kind 1), or
  // nothing wrote the volume (no VM): app-consistent. False: the guest's
  // 5 s limit thawed it first, so the copy is only crash-consistent.
  bool consistent = false;
};

// A request handed to the worker thread that owns the VM's channel.
struct SnapshotJob {
  std::string volume_id;
  std::string target;  // the snapshot file to create
  std::promise<Result<SnapshotResult>> done;
};

// [a-z0-9_-], 1..64 bytes, not starting with '-': a snapshot id is a file
// name under STATE/snapshots and nothing else.
[[nodiscard]] bool validSnapshotId(std::string_view id);

// Creates `to` (0600, must not exist) as a reflink of `from`: true; false
// when the filesystem has no reflinks (then `to` is left empty).
[[nodiscard]] Result<bool> tryClone(const std::string& from, const std::string& to);
// A reflink of `from` at `to` (created 0600, must not exist) when the
// filesystem supports it, else a sparse copy. Returns "reflink" or "copy".
[[nodiscard]] Result<std::string> cloneOrCopy(const std::string& from, const std::string& to);

}  // namespace plfm::agent
