// vt-init's volume mounts (docs/specs/runtime/volume-mounts.md §vt-init):
// after the switch root, each CONFIG volume's disk (found by its virtio
// serial) is mounted nodev,nosuid at its path, grown to its disk, and handed
// to the workload's user while it is fresh. The decisions are plan.h's
// (volumeDevice, parseExt4Superblock, ext4GrowTarget, chownFreshVolumeRoot);
// this file only acts.
#pragma once

#include <string>

#include "plan.h"
#include "volume_ops.h"

namespace plfm::init {

// Mounts every volume of `config`, in order; the first failure names its
// mount ("volume /data: no disk has serial vol-0").
[[nodiscard]] Result<void> mountVolumes(const guest_proto::Config& config);

// Opens `path` (absolute) from / one component at a time without following a
// symlink anywhere, creating missing directories (0755, root) when `create`.
// The last component is opened with `last_flags` (O_PATH or O_RDONLY, plus
// O_DIRECTORY). A symlink component fails, naming it.
[[nodiscard]] Result<int> openDirNoFollow(const std::string& path, bool create, int last_flags);

}  // namespace plfm::init
