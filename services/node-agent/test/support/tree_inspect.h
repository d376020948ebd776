// Describes a filesystem tree as a sorted map path -> "type mode uid:gid
// size target", either from a host directory (e.g. `umoci unpack` output) or
// from inside an ext4 image via debugfs (no mount). Tests compare the two.
#pragma once

#include <map>
#include <string>

#include "plfm/core/result.h"

namespace plfm::image::testing {

// One line per object. Directories have no size; symlinks carry their
// target, device nodes "major,minor"; hardlinked files share a "link group"
// (the smallest path of the group) so that link structure is compared too.
using TreeListing = std::map<std::string, std::string>;

[[nodiscard]] Result<TreeListing> listHostTree(const std::string& root);
// Walks the ext4 image with `debugfs -R "ls -p"`, level by level.
// lost+found (made by mkfs) is left out.
[[nodiscard]] Result<TreeListing> listExt4(const std::string& image, const std::string& scratch);
// Reads one file out of the ext4 image.
[[nodiscard]] Result<std::string> catExt4(const std::string& image, const std::string& path,
                                          const std::string& scratch);

}  // namespace plfm::image::testing
