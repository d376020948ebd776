// BlobStore is the content-addressed half of the image cache:
// CACHE/blobs/sha256/<hex>, each file verified by sha256 while it streamed
// in, and only renamed into place once verified, so a blob that exists is
// whole and correct.
//
// Downloads land in CACHE/tmp/<hex>.partial under an flock on
// CACHE/locks/<hex>.lock. Two pulls of one blob (threads or processes) take
// turns on the lock, and the second finds the blob already stored: one
// download. After a crash the partial file stays, and the next ensure()
// re-hashes it and resumes from its end (an HTTP Range request); a source
// that cannot resume restarts from zero. A digest or size mismatch deletes
// the partial file and fails with image.digest_mismatch naming the blob.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "image/digest.h"
#include "image/image_source.h"
#include "image/manifest.h"
#include "plfm/core/result.h"

namespace plfm::image {

struct FetchPolicy {
  int attempts = 4;                        // per blob, resuming where the last attempt stopped
  std::chrono::milliseconds backoff{100};  // doubles per attempt
  uint64_t max_blob_bytes = uint64_t{8} << 30;
  bool fsync = true;  // fsync blobs before rename (power-loss durability)
};

struct BlobFetchStats {
  bool cached = false;         // already present (or fetched by a concurrent pull)
  uint64_t bytes_fetched = 0;  // bytes that crossed the wire in this call
  uint64_t resumed_from = 0;   // offset of a partial file found on entry
  int attempts = 0;
};

// (bytes so far, total) while a blob streams in.
using BlobProgressFn = std::function<void(uint64_t done, uint64_t total)>;

class BlobStore {
 public:
  explicit BlobStore(std::string cache_dir);

  [[nodiscard]] std::string path(const Digest& d) const;
  [[nodiscard]] bool has(const Digest& d) const;
  // Reads a small blob (manifest, config); fails above `max_bytes`.
  [[nodiscard]] Result<std::string> read(const Digest& d, size_t max_bytes = 16 << 20) const;
  // Stores bytes already in memory, after checking them against `d`.
  [[nodiscard]] Result<void> put(const Digest& d, std::string_view bytes) const;
  // Makes sure blob `desc` is stored and verified, fetching it from `source`.
  [[nodiscard]] Result<BlobFetchStats> ensure(const Descriptor& desc, ImageSource& source,
                                              const FetchPolicy& policy,
                                              const BlobProgressFn& progress = nullptr) const;

  [[nodiscard]] std::string partialPath(const Digest& d) const;
  [[nodiscard]] std::string lockPath(const Digest& d) const;

 private:
  std::string dir_;
};

}  // namespace plfm::image
