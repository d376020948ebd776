// LayerApplier applies image layers, in order, into a staging directory that
// mkfs.ext4 -d then turns into the rootfs (rootfs_builder.h).
//
// Each layer is a tar stream, uncompressed or gzip or zstd (sniffed, not
// trusted from the media type), read with libarchive. The uncompressed stream
// is hashed on the way and checked against the config's diff_id, and counted
// against the limits, so a decompression bomb stops early.
//
// Semantics (image-spec layer.md): ".wh.NAME" deletes NAME from lower layers,
// ".wh..wh..opq" hides a directory's lower-layer children, later entries
// replace earlier ones, hardlinks and symlinks are kept. Entry names with
// ".." are rejected. Parent directories are resolved inside the rootfs the
// way the guest will see them: an absolute symlink points into the rootfs,
// never at the host, and a symlink whose target climbs above the rootfs root
// is rejected (image.path_escape).
//
// What a staging directory on the host must not or cannot hold is collected
// as fixups for the finished ext4 (ext4_fixups.h writes them with libext2fs):
// device nodes and extended attributes (never on the host: their names and
// values are tenant bytes, filtered by checkXattrName), and, when not running
// as root, ownership the kernel refuses to set.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "image/digest.h"
#include "image/path_safety.h"
#include "plfm/core/result.h"

namespace plfm::image {

struct UnpackLimits {
  uint64_t max_layer_bytes = uint64_t{8} << 30;            // one compressed layer
  uint64_t max_layer_unpacked_bytes = uint64_t{32} << 30;  // one uncompressed tar stream
  uint64_t max_image_unpacked_bytes = uint64_t{64} << 30;  // all layers' tar streams
  // Uncompressed/compressed bytes, enforced once a layer has produced
  // `ratio_grace_bytes` (small, very compressible layers are normal).
  uint64_t max_compression_ratio = 200;
  uint64_t ratio_grace_bytes = uint64_t{64} << 20;
  uint64_t max_entries = 4'000'000;  // over the whole image
  size_t max_path_bytes = 4096;
};

// What the ext4 needs beyond what mkfs copies from the staging directory.
struct InodeFixup {
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint32_t> mode;  // full st_mode, type bits included
  char device = 0;               // 'c' or 'b': create this node in the ext4
  uint32_t major = 0;
  uint32_t minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

struct LayerStats {
  uint64_t compressed_bytes = 0;
  uint64_t tar_bytes = 0;
  uint64_t entries = 0;
  uint64_t whiteouts = 0;
};

class LayerApplier {
 public:
  // `staging` must be an empty directory.
  LayerApplier(std::string staging, UnpackLimits limits);

  // Applies one layer blob. `diff_id`, when given, is checked against the
  // sha256 of the uncompressed stream.
  [[nodiscard]] Result<LayerStats> apply(const std::string& blob_path, const Digest& layer,
                                         const std::optional<Digest>& diff_id);
  // Sets directory modes, owners and times, deferred so that read-only
  // directories did not block later layers. Call once after the last layer.
  [[nodiscard]] Result<void> finish();

  [[nodiscard]] const std::map<std::string, InodeFixup>& fixups() const { return fixups_; }
  [[nodiscard]] const std::string& staging() const { return root_; }
  // Layer xattrs refused by checkXattrName or over kMaxXattrValueBytes.
  [[nodiscard]] uint64_t droppedXattrs() const { return dropped_xattrs_; }

 private:
  struct DirMeta {
    uint32_t mode = 0755;
    uint32_t uid = 0;
    uint32_t gid = 0;
    int64_t mtime = 0;
  };
  struct Entry;  // one archive entry being applied (layer_applier.cc)

  Result<void> applyEntry(Entry& e);
  Result<void> applyWhiteout(const Entry& e, const Whiteout& w);
  // Resolves a clean relative directory inside the rootfs (symlinks followed
  // in root scope); creates missing components when `create`. Returns the
  // real relative path, or image.not_found when missing and !create.
  Result<std::string> resolveDir(const std::string& rel, bool create, const Entry& e);
  Result<void> removePath(const std::string& real_rel);
  Result<void> removeLowerChildren(const std::string& real_rel, const std::string& tar_rel);
  void forget(const std::string& real_rel);
  void setOwner(int fd, const std::string& host, const std::string& rel, uint32_t uid, uint32_t gid,
                bool is_link);
  void setXattrs(const std::string& host, const std::string& rel, Entry& e);
  [[nodiscard]] std::string host(const std::string& rel) const {
    return rel.empty() ? root_ : root_ + "/" + rel;
  }

  std::string root_;
  UnpackLimits limits_;
  bool is_root_ = false;
  uid_t euid_ = 0;
  gid_t egid_ = 0;
  uint64_t image_tar_bytes_ = 0;
  uint64_t image_entries_ = 0;
  uint64_t dropped_xattrs_ = 0;
  std::set<std::string> real_dirs_;             // verified real directories (no symlinks)
  std::unordered_set<std::string> this_layer_;  // real paths written by the current layer
  std::map<std::string, DirMeta> dir_meta_;     // deferred directory metadata
  std::map<std::string, InodeFixup> fixups_;    // by real path
  std::string layer_name_;                      // for messages
};

}  // namespace plfm::image
