// ImageSource is where manifests and blobs come from. Two implementations:
// RegistrySource (OCI distribution API v2 over HTTP, registry_source.h) and
// OciLayoutSource (an OCI image layout directory, oci_layout.h). The cache
// (image_cache.h) drives either one the same way and verifies every byte, so
// a source never needs to be trusted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "image/manifest.h"
#include "plfm/core/result.h"

namespace plfm::image {

// Receives a blob's bytes as they stream in (blob_store.h hashes and writes
// them). A source starts at offset() so that an interrupted download resumes.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  // Appends bytes. An error (size or limit exceeded, disk full) aborts the
  // transfer and is returned by fetchBlob.
  [[nodiscard]] virtual Result<void> write(const char* data, size_t len) = 0;
  // The source cannot resume at offset(): drop what was written, restart at 0.
  [[nodiscard]] virtual Result<void> restart() = 0;
  [[nodiscard]] virtual uint64_t offset() const = 0;
};

struct FetchedManifest {
  std::string bytes;
  std::string content_type;  // may be empty (layouts carry it in the descriptor)
};

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // `reference` is a tag or "sha256:..." digest.
  [[nodiscard]] virtual Result<FetchedManifest> fetchManifest(std::string_view reference) = 0;
  // Streams the blob into `writer`, from writer.offset() on.
  [[nodiscard]] virtual Result<void> fetchBlob(const Descriptor& blob, BlobWriter& writer) = 0;
  // Whether the source serves `blob` to us, without its bytes (a registry
  // HEAD with our credentials): proves access to a blob the cache already
  // holds (ImageCache's per-scope authorization). An error otherwise.
  [[nodiscard]] virtual Result<void> checkBlob(const Descriptor& blob) = 0;
  // For messages: "127.0.0.1:5000/app" or "oci:/images/app".
  [[nodiscard]] virtual std::string describe() const = 0;
};

// Errors worth retrying: the network or the server failed, not the content.
[[nodiscard]] inline bool isRetryable(const Error& e) {
  return e.is(errc::kUnavailable) || e.is(errc::kDeadlineExceeded);
}

}  // namespace plfm::image
