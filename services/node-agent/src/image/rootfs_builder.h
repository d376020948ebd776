// buildExt4 turns a staging directory (layer_applier.h) into an ext4 image
// without mounting anything and without root: `mkfs.ext4 -d` copies the tree
// (files, directories, symlinks, hardlinks, modes, owners, times, xattrs),
// then ext4_fixups.h writes what the host tree must not or could not carry
// (device nodes, extended attributes, owners the kernel refused us) straight
// into the image with libext2fs.
//
// The image is sized from the content (blocks of every file, directories,
// inodes) plus headroom, and has no journal: the guest mounts it read-only
// under an overlay, so a journal would only cost space and build time.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "image/layer_applier.h"
#include "plfm/core/result.h"

namespace plfm::image {

struct RootfsOptions {
  uint32_t headroom_percent = 10;  // on top of the estimated need
  uint64_t min_headroom_bytes = uint64_t{16} << 20;
  std::string mkfs = "mkfs.ext4";
  std::string uuid;  // filesystem UUID; empty: random
};

struct RootfsStats {
  uint64_t image_bytes = 0;    // the ext4 file's size
  uint64_t content_bytes = 0;  // estimated need before headroom
  uint64_t inodes = 0;
  uint64_t fixups = 0;
};

// Writes the ext4 image to `out` (which must not exist). `scratch` is a
// directory for the mkfs log.
[[nodiscard]] Result<RootfsStats> buildExt4(const std::string& staging,
                                            const std::map<std::string, InodeFixup>& fixups,
                                            const std::string& out, const std::string& scratch,
                                            const RootfsOptions& options);

}  // namespace plfm::image
