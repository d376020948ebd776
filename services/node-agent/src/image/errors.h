// Error codes of the node agent's image/: pulling, checking and unpacking OCI images
// (docs/specs/runtime/image-cache.md). Codes are contract (the agent reports them to the control
// plane, and tests match them): never change one's meaning. The generic codes (plfm::errc,
// plfm/core/error.h) read the same through this namespace.
#pragma once

#include <string_view>

#include "plfm/core/error.h"

namespace plfm::image::errc {

using namespace ::plfm::errc;  // so that errc::kIo reads the same in this component

inline constexpr std::string_view kBadConfig = "image.bad_config";
inline constexpr std::string_view kBadLayer = "image.bad_layer";
inline constexpr std::string_view kBadManifest = "image.bad_manifest";
inline constexpr std::string_view kDigestMismatch = "image.digest_mismatch";
inline constexpr std::string_view kLimitExceeded = "image.limit_exceeded";
inline constexpr std::string_view kNotCached = "image.not_cached";
inline constexpr std::string_view kPathEscape = "image.path_escape";
inline constexpr std::string_view kRefRefused = "image.ref_refused";
inline constexpr std::string_view kRegistryRefused = "image.registry_refused";
inline constexpr std::string_view kSizeMismatch = "image.size_mismatch";
inline constexpr std::string_view kUnsafeDir = "image.unsafe_dir";
inline constexpr std::string_view kUnsupportedLayer = "image.unsupported_layer";
inline constexpr std::string_view kUnsupportedManifest = "image.unsupported_manifest";

}  // namespace plfm::image::errc
