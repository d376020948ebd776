// ImageCache is the node agent's image store: it pulls images from
// registries or OCI layouts, verifies every blob, applies the layers and
// builds one ext4 rootfs per image, cached by manifest digest, and garbage
// collects by LRU within a size budget without touching images in use.
//
//   PLFM_ASSIGN_OR_RETURN(auto cache, ImageCache::open("/var/lib/plfm/images", {}));
//   PLFM_ASSIGN_OR_RETURN(auto ref, parseImageRef("registry.example.com/app:v3"));
//   PLFM_ASSIGN_OR_RETURN(auto img, cache.pull(ref, {}, progress));
//   PLFM_TRY(cache.acquire(img.manifest_digest, instance_id));   // while the VM runs
//   ... boot img.rootfs ...
//   PLFM_TRY(cache.release(img.manifest_digest, instance_id));
//
// Layout on disk (docs/specs/runtime/image-cache.md):
//   blobs/sha256/<hex>          verified blobs: manifests, configs, layers
//   rootfs/<manifest-hex>.ext4  the built rootfs
//   rootfs/<manifest-hex>.json  its record (config, layers); mtime = last use
//   refs/<manifest-hex>/<holder> one file per running user of the image
//   authz/<digest-hex>/<scope>  the scopes (orgs) the registry served it to
//   locks/                      flock files (cache.lock, one per blob and rootfs)
//   tmp/                        partial downloads and staging trees
// Every file appears by rename once complete, so a kill -9 at any point
// leaves a consistent cache; the next pull resumes or restarts.
//
// An ImageCache is safe to use from several threads, and several processes
// may share one directory.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "image/blob_store.h"
#include "image/image_config.h"
#include "image/image_ref.h"
#include "image/image_source.h"
#include "image/layer_applier.h"
#include "image/manifest.h"
#include "image/registry_auth.h"
#include "image/rootfs_builder.h"
#include "plfm/core/clock.h"
#include "plfm/core/result.h"

namespace plfm::image {

struct CacheOptions {
  uint64_t size_budget_bytes = uint64_t{20} << 30;  // gc() evicts down to this
  UnpackLimits limits;
  RootfsOptions rootfs;
  FetchPolicy fetch;
  int parallel_downloads = 3;                    // layers fetched at once
  std::string credentials_file;                  // Docker config.json shape; empty: anonymous
  std::vector<std::string> insecure_registries;  // plain http (loopback always is)
  // Image references are tenant input (docs/security.md). When set, a
  // registry is reached only at public unicast addresses or inside these
  // prefixes ("127.0.0.1/32"), checked after DNS and on every redirect
  // (address_policy.h). nullopt: any address (tests, `image pull`).
  std::optional<std::vector<std::string>> registry_allow_cidrs;
  // `oci:DIR` references read a directory on this host: only the operator
  // (or a test) may name one, never a release. The agent turns this off.
  bool allow_oci_layout = true;
  const Clock* clock = nullptr;  // stamps last use; nullptr: the real clock
  // Where layers are unpacked before mkfs copies them into the ext4. The tree
  // is transient, so a tmpfs saves the disk a write and an unlink of every
  // file. Empty: a private directory in /dev/shm (shmStagingParent(), 0700)
  // when it is a tmpfs whose room (half its free space, less 64 MiB) holds
  // the layers' declared sizes; the unpacked size is then capped at that room
  // while unpacking, and an image that outgrows it is unpacked again in
  // CACHE/tmp. Each pull stages in a fresh mkdtemp directory (0700).
  std::string staging_dir;
};

struct PullOptions {
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;
  // Who the image is for: an org id ([a-z0-9_-], 1..64 bytes). Empty: the
  // operator (`image pull`, tests), served whatever the cache holds. Set: a
  // digest already in the cache is used for this scope only after the
  // registry, asked with this scope's credentials, served its manifests
  // (GET by digest, hash-checked) and every blob this pull does not
  // download (HEAD); then authz/<digest>/<scope> records it, so the next
  // start needs no registry. One org's pull never lets another org run a
  // private image (docs/specs/runtime/image-cache.md, "Per-org access").
  std::string scope;
  // The scope's credentials for the image's registry (the agent gets them
  // from the control plane). With a scope only these are used, never the
  // node's credentials_file.
  std::optional<RegistryCredentials> credentials;
};

// Progress of a pull. Events come from download threads too, but one at a
// time: a ProgressFn needs no locking of its own.
struct PullEvent {
  enum class Kind { kResolved, kLayerProgress, kLayerFetched, kLayerApplied, kRootfsBuilt };
  Kind kind = Kind::kResolved;
  int layer = -1;  // index, for layer events
  int layers = 0;
  Digest digest;  // the layer, or the manifest for kResolved/kRootfsBuilt
  uint64_t done = 0;
  uint64_t total = 0;
  bool cached = false;
  std::chrono::milliseconds elapsed{0};  // since the pull started
};
using ProgressFn = std::function<void(const PullEvent&)>;

struct PullStats {
  int blobs_fetched = 0;  // blobs this pull downloaded
  int blobs_cached = 0;   // already present, or fetched by a concurrent pull
  uint64_t bytes_fetched = 0;
  uint64_t resumed_bytes = 0;  // bytes of partial downloads reused
  bool rootfs_cached = false;
  double seconds = 0;
};

struct PulledImage {
  std::string ref;
  Digest manifest_digest;
  Digest config_digest;
  ImageConfig config;
  std::string rootfs;         // path of the ext4 image
  uint64_t rootfs_bytes = 0;  // the ext4 image's size
  std::vector<Descriptor> layers;
  PullStats stats;

  // {"ref","manifest_digest","config_digest","rootfs","rootfs_bytes","layers",
  //  "config":{...},"stats":{...}}
  [[nodiscard]] nlohmann::json toJson() const;
};

struct CachedImage {
  Digest manifest_digest;
  Digest config_digest;
  std::string ref;
  std::string rootfs;
  uint64_t bytes = 0;  // rootfs plus blobs only this image uses
  int refs = 0;
  Clock::WallTime last_used;
};

struct GcReport {
  uint64_t bytes_before = 0;
  uint64_t bytes_after = 0;
  int images_removed = 0;
  int blobs_removed = 0;
  int images_in_use = 0;       // kept because a holder references them
  int images_kept = 0;         // kept because the caller asked (not held)
  int unreadable_records = 0;  // held images whose record is unreadable (kept all the same)
  bool over_budget = false;    // still over: what is left is in use
  std::vector<Digest> removed;
};

class ImageCache {
 public:
  // Creates the directory layout if needed.
  [[nodiscard]] static Result<ImageCache> open(std::string dir, CacheOptions options = {});

  [[nodiscard]] Result<PulledImage> pull(const ImageRef& ref, const PullOptions& options = {},
                                         const ProgressFn& progress = nullptr) const;
  // The rootfs of a cached image; builds it from cached blobs when only the
  // blobs are there. image.not_cached when the image was never pulled.
  [[nodiscard]] Result<std::string> rootfs(const Digest& manifest_digest) const;
  [[nodiscard]] Result<PulledImage> image(const Digest& manifest_digest) const;
  [[nodiscard]] Result<std::vector<CachedImage>> list() const;

  // Reference counts kept on disk, one file per holder (an instance id), so
  // they survive agent restarts. acquire() is idempotent per holder.
  [[nodiscard]] Result<void> acquire(const Digest& manifest_digest, std::string_view holder) const;
  [[nodiscard]] Result<void> release(const Digest& manifest_digest, std::string_view holder) const;
  [[nodiscard]] Result<int> refCount(const Digest& manifest_digest) const;

  // Removes orphaned blobs and temporary files, then evicts least recently
  // used images that no holder references and `keep` does not name until the
  // cache fits the budget. Waits for running pulls to finish (and blocks new
  // ones meanwhile).
  [[nodiscard]] Result<GcReport> gc(const std::set<Digest>& keep = {}) const;
  [[nodiscard]] uint64_t usageBytes() const;

  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] const CacheOptions& options() const { return options_; }
  [[nodiscard]] const BlobStore& blobs() const { return blobs_; }
  [[nodiscard]] std::string rootfsPath(const Digest& d) const;
  [[nodiscard]] std::string recordPath(const Digest& d) const;
  // authz/<hex>: one empty file per scope the image was authorized for.
  [[nodiscard]] std::string authzDir(const Digest& d) const;
  [[nodiscard]] bool authorized(const Digest& d, std::string_view scope) const;

 private:
  ImageCache(std::string dir, CacheOptions options);
  struct Resolved;
  // `cached_ok`: a manifest named by digest may come from the blob store.
  Result<Resolved> resolve(const ImageRef& ref, const PullOptions& options, ImageSource& source,
                           bool cached_ok) const;
  Result<FetchedManifest> fetchManifest(const std::string& reference,
                                        const std::optional<Digest>& digest, ImageSource& source,
                                        bool cached_ok) const;
  Result<std::unique_ptr<ImageSource>> sourceFor(const ImageRef& ref,
                                                 const PullOptions& options) const;
  Result<void> authorize(const Digest& top, std::string_view scope) const;
  // Builds rootfs/<hex>.ext4 once (under its lock); `wait_layer(i)` returns
  // when layer i is in the blob store.
  Result<RootfsStats> buildRootfs(const Digest& manifest_digest, const ImageManifest& manifest,
                                  const ImageConfig& config,
                                  const std::function<Result<void>(size_t)>& wait_layer,
                                  const ProgressFn& progress, bool* was_cached,
                                  std::chrono::steady_clock::time_point start) const;
  Result<void> writeRecord(const Digest& manifest_digest, const std::optional<Digest>& index,
                           const ImageManifest& manifest, const std::string& ref) const;
  void touch(const Digest& manifest_digest) const;
  [[nodiscard]] std::string tmpName(std::string_view what) const;
  // Where layers are unpacked: a fresh private directory, with the unpack
  // limits for it (a tmpfs caps the image's uncompressed size at its room).
  struct Staging {
    std::string dir;
    bool on_shm = false;
    UnpackLimits limits;
  };
  [[nodiscard]] Result<Staging> makeStaging(const ImageManifest& manifest, bool allow_shm) const;

  std::string dir_;
  CacheOptions options_;
  BlobStore blobs_;
};

// The parent of staging trees on /dev/shm: /dev/shm/plfm-stage.<euid>,
// created 0700 and used only while it is a directory we own that nobody else
// can write (ensurePrivateDir).
[[nodiscard]] std::string shmStagingParent();

}  // namespace plfm::image
