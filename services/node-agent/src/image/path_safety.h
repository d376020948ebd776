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

}  // namespace plfm::image
