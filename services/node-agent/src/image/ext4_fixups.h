// applyExt4Fixups writes the InodeFixups of a layer stack (layer_applier.h)
// straight into a finished ext4 image with libext2fs: device nodes, modes,
// owners and extended attributes. It replaces a generated debugfs script, in
// which a tenant's xattr name could carry debugfs commands (docs/security.md,
// "debugfs script injection"): here every name and path is a C string handed
// to a library call, never text in a command language.
//
// Paths are resolved component by component from the image's root, without
// following symlinks; every component but the last must be a directory. A
// fixup whose path does not resolve, or whose mode's type differs from the
// inode's, fails the build with an error naming the (escaped) path.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "image/layer_applier.h"
#include "plfm/core/result.h"

namespace plfm::image {

// Applies every fixup to the ext4 at `image`; returns how many were applied.
[[nodiscard]] Result<uint64_t> applyExt4Fixups(const std::string& image,
                                               const std::map<std::string, InodeFixup>& fixups);

}  // namespace plfm::image
