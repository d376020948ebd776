// Agent-local volume snapshots (docs/specs/runtime/volume-mounts.md
// §Snapshots), the primitive a control-plane route and the backup schedule
// will build on: FREEZE the volume in the guest, take a point-in-time copy of
// its file into STATE/snapshots/<snapshot_id>.ext4, THAW, and measure the
// freeze window (FREEZE sent to THAWED received).
//
// The copy is a reflink (FICLONE, O(metadata)) where the volumes directory
// supports it (XFS, btrfs), else a sparse copy made while the guest holds
// the freeze: with cache=none every write the guest's FIFREEZE flushed is in
// the file, and no write reaches it until THAW. The copy's length bounds
// that window, and the guest thaws by itself after 5 s (a snapshot then says
// consistent = false). QEMU blockdev-backup, which would take the window
// down to the job's start on hosts without reflinks, is not done yet.
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
  std::string method;      // "reflink" or "copy"
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

// A reflink of `from` at `to` (created 0600, must not exist) when the
// filesystem supports it, else a sparse copy. Returns "reflink" or "copy".
[[nodiscard]] Result<std::string> cloneOrCopy(const std::string& from, const std::string& to);

}  // namespace plfm::agent
