// Parsing of manifests, image indexes (OCI image-index.md) and Docker
// manifest lists, and choosing the platform manifest to run. Parsers take
// untrusted bytes from a registry or a layout and never throw; each has a
// fuzz target (test/manifest_fuzz.cc).
//
//   PLFM_ASSIGN_OR_RETURN(auto doc, parseManifestDocument(bytes, content_type));
//   if (doc.index) { PLFM_ASSIGN_OR_RETURN(auto d, selectPlatform(*doc.index, "linux", "amd64")); }
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "image/digest.h"
#include "plfm/core/result.h"

namespace plfm::image {

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
};

// A content descriptor (OCI descriptor.md).
struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::optional<Platform> platform;
  std::string ref_name;  // org.opencontainers.image.ref.name, in layout indexes
};

struct ImageIndex {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

struct ImageManifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
};

// One of the two, whichever the bytes are.
struct ManifestDocument {
  std::optional<ImageIndex> index;
  std::optional<ImageManifest> manifest;
};

// Limits that keep a hostile document from costing much.
inline constexpr size_t kMaxManifestBytes = 4 << 20;
inline constexpr size_t kMaxLayers = 1024;
inline constexpr size_t kMaxIndexEntries = 4096;

// `content_type` is the HTTP Content-Type (may be empty); the document's own
// mediaType wins, and a missing one is inferred from its fields.
[[nodiscard]] Result<ManifestDocument> parseManifestDocument(std::string_view bytes,
                                                             std::string_view content_type = "");

// The manifest for os/architecture (variant ignored unless `variant` is
// set). The error lists the platforms the index does offer.
[[nodiscard]] Result<Descriptor> selectPlatform(const ImageIndex& index, std::string_view os,
                                                std::string_view architecture,
                                                std::string_view variant = "");

// Layer compression inferred from a media type; kUnknown is decided by
// sniffing the bytes at unpack time.
enum class Compression { kNone, kGzip, kZstd, kUnknown };
[[nodiscard]] Compression layerCompression(std::string_view media_type);
// True for layer media types we can apply (tar, gzip, zstd; OCI and Docker).
[[nodiscard]] bool isSupportedLayerType(std::string_view media_type);

}  // namespace plfm::image
