// The agent's own image GC (issue 16): the cache (image/image_cache.h)
// evicts least recently used images nobody holds until it fits its budget;
// this decides the budget and what else it must keep.
//
//  * Instances hold their image while they exist (ImageCache::acquire).
//  * ImageHistory keeps, per env in the plan, the two most recent distinct
//    image digests the plan has asked for: the current release and the one
//    before it, so that a rollback boots from the cache without a pull. An
//    env that leaves the plan is forgotten (its images become evictable).
//  * The budget is a size or a share of the cache's filesystem
//    (`--image-cache-budget`, default 50%).
//
// See docs/specs/runtime/image-cache.md, "Automatic GC".
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "image/digest.h"
#include "plfm/core/result.h"

namespace plfm::agent {

class ImageHistory {
 public:
  static constexpr size_t kKeepPerEnv = 2;

  // Loads `path` (one line per env: "ENV_ID DIGEST [DIGEST]", newest first);
  // a line that does not parse is dropped with a warning.
  explicit ImageHistory(std::string path);

  // Records what the plan asks for: env id -> the image digests its
  // instances use. Digests new to an env go first (newest); each env keeps
  // at least kKeepPerEnv, and all that the plan uses. Saved when it changed.
  void observe(const std::map<std::string, std::set<image::Digest>>& plan);

  // Every digest some env keeps.
  [[nodiscard]] std::set<image::Digest> keep() const;
  [[nodiscard]] std::map<std::string, std::vector<image::Digest>> snapshot() const;

 private:
  void saveLocked() const;

  std::string path_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<image::Digest>> envs_;  // newest first
};

// "50%" of `filesystem_bytes`, or a size: "20GiB", "512MiB", "1000000"
// (bytes; K/M/G/T and KiB..TiB are powers of 1024). A percentage is 1 to 100.
[[nodiscard]] Result<uint64_t> parseImageBudget(std::string_view text, uint64_t filesystem_bytes);

// The size of the filesystem holding `dir` (statvfs), 0 when unknown.
[[nodiscard]] uint64_t filesystemBytes(const std::string& dir);

}  // namespace plfm::agent
