// The node's volume files (docs/specs/runtime/volume-mounts.md §Node side):
// one ext4 filesystem per volume in a sparse file, STATE/volumes/
// <volume_id>.ext4, mode 0600. The agent formats and grows the file but
// never mounts it or reads what is inside: the guest owns the filesystem.
//
//   VolumeStore volumes(state_dir + "/volumes");
//   PLFM_TRY(volumes.open());                          // the directory; drops *.tmp
//   PLFM_ASSIGN_OR_RETURN(auto size, volumes.ensure(id, size_bytes));  // create or grow
//   PLFM_TRY(volumes.claim(instance_id, workload.volumes));  // one writer per volume
//   ...
//   volumes.release(instance_id);                      // its VM is gone
//   PLFM_TRY(volumes.remove(id));                      // only for a plan `deleting`
//
// Names come only from checked VolumeIds (workload_check.h), so a path built
// here never leaves the directory. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/instance_record.h"
#include "plfm/core/result.h"

namespace plfm::agent {

class VolumeStore {
 public:
  explicit VolumeStore(std::string dir, std::string mkfs = "mkfs.ext4");

  // Creates the directory (0700) and removes files a crash left half made.
  [[nodiscard]] Result<void> open();
  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] std::string pathFor(const std::string& volume_id) const;

  // The file at `size_bytes` or more: created sparse and formatted when
  // absent, grown with ftruncate when smaller, never shrunk. Returns the
  // file's size afterwards.
  [[nodiscard]] Result<uint64_t> ensure(const std::string& volume_id, uint64_t size_bytes);
  // The file's size; nullopt when there is none.
  [[nodiscard]] std::optional<uint64_t> size(const std::string& volume_id) const;

  // Marks `instance_id` as the writer of each of `volumes`, all or none:
  // fails (agent.volume_in_use) naming the volume and the instance that
  // holds it when another instance does. Claiming again is fine.
  [[nodiscard]] Result<void> claim(const std::string& instance_id,
                                   const std::vector<WorkloadVolume>& volumes);
  void release(const std::string& instance_id);
  // The instance that holds `volume_id`, if any.
  [[nodiscard]] std::optional<std::string> holder(const std::string& volume_id) const;

  // Deletes the file (nothing when it is absent); refused while it is claimed.
  [[nodiscard]] Result<void> remove(const std::string& volume_id);

  // The size of the filesystem that holds dir() (statvfs f_blocks *
  // f_frsize); 0 when it cannot be read.
  [[nodiscard]] uint64_t capacityBytes() const;

 private:
  [[nodiscard]] Result<void> create(const std::string& path, uint64_t size_bytes);

  std::string dir_;
  std::string mkfs_;
  std::mutex files_mu_;  // one create, grow or delete at a time
  mutable std::mutex claims_mu_;
  std::map<std::string, std::string> holders_;  // guarded by claims_mu_: volume -> instance
};

}  // namespace plfm::agent
