// Pure helpers for layer entry names: normalizing a tar path and classifying
// OCI whiteouts (image-spec layer.md, "Whiteouts"). No I/O, so they are unit
// tested and fuzzed on their own; layer_applier.cc uses them per entry.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::image {

inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kOpaqueWhiteout = ".wh..wh..opq";

// Normalizes a tar entry name to a clean relative path: drops a leading "/"
// and "./", empty and "." components and a trailing "/". Returns "" for the
// root itself. A ".." component is path traversal and an error
// (image.path_escape), as are NUL bytes and names over `max_len`.
[[nodiscard]] Result<std::string> cleanEntryPath(std::string_view name, size_t max_len = 4096);

struct Whiteout {
  enum class Kind { kNone, kFile, kOpaque, kOtherMeta };
  Kind kind = Kind::kNone;
  std::string target;  // kFile: the path to delete; kOpaque: the directory
};

// Classifies a clean path: "a/.wh.b" deletes "a/b"; "a/.wh..wh..opq" makes
// "a" opaque; other ".wh..wh." names (aufs metadata) are kOtherMeta and
// ignored.
[[nodiscard]] Whiteout classifyWhiteout(std::string_view clean_path);

// "a/b/c" -> {"a","b","c"}; empty components are skipped.
[[nodiscard]] std::vector<std::string> splitPath(std::string_view path);
[[nodiscard]] std::string joinPath(const std::vector<std::string>& parts);
// "a/b/c" -> "a/b"; "a" -> "".
[[nodiscard]] std::string_view parentOf(std::string_view path);
[[nodiscard]] std::string_view baseOf(std::string_view path);

// Extended attribute names from a layer (pax SCHILY.xattr.*, LIBARCHIVE.xattr.*)
// are tenant bytes. Only names a guest kernel gives meaning to, and that
// cannot steer anything on the host or in the guest's own overlay, reach the
// ext4: user.*, security.* and the two POSIX ACLs. trusted.* is refused
// because trusted.overlay.* would steer the guest's overlayfs; other
// namespaces do not exist in Linux. Names are 1..255 bytes (XATTR_NAME_MAX)
// of printable ASCII, with a non-empty part after the namespace.
enum class XattrNameVerdict { kAllowed, kBadNamespace, kBadBytes, kTooLong };
[[nodiscard]] XattrNameVerdict checkXattrName(std::string_view name);
[[nodiscard]] std::string_view describe(XattrNameVerdict v);
inline constexpr size_t kMaxXattrNameBytes = 255;
// The largest value an ext4 with 4 KiB blocks and no ea_inode feature holds.
inline constexpr size_t kMaxXattrValueBytes = 4000;

// `bytes` made safe for a log line or an error message: printable ASCII kept,
// everything else as \xHH, cut at `max` input bytes with "..." appended.
[[nodiscard]] std::string printable(std::string_view bytes, size_t max = 120);

}  // namespace plfm::image
