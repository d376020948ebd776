#include "image/image_cache.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "image/errors.h"
#include "image/fs_util.h"
#include "image/oci_layout.h"
#include "image/path_safety.h"
#include "image/registry_source.h"
#include "plfm/core/json.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::image {

namespace {

std::atomic<uint64_t> g_tmp_counter{0};
constexpr const char* kShm = "/dev/shm";

// Removes "<prefix><pid>-..." entries of `dir` whose process is gone: what a
// kill -9 mid-pull leaves. Partial downloads (*.partial) stay, to be resumed.
void removeDeadLeftovers(const std::string& dir, std::string_view prefix) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (endsWith(name, ".partial") || !startsWith(name, prefix)) continue;
    const char* pid_text = name.c_str() + prefix.size();
    if (prefix.empty()) {
      const size_t dash = name.rfind('-', name.rfind('-') - 1);
      if (dash == std::string::npos) continue;
      pid_text = name.c_str() + dash + 1;
    }
    const auto pid = static_cast<pid_t>(std::atoi(pid_text));
    if (pid > 0 && !processAlive(pid)) (void)removeAll(entry.path().string());
  }
}

// Fetches layers on a bounded number of threads; the applier waits for each
// in order, so unpacking layer 0 overlaps with downloading the rest.
class LayerDownloads {
 public:
  LayerDownloads(const BlobStore& store, ImageSource& source, const FetchPolicy& policy,
                 const std::vector<Descriptor>& layers, int parallel, const ProgressFn& progress,
                 std::chrono::steady_clock::time_point start)
      : store_(store),
        source_(source),
        policy_(policy),
        layers_(layers),
        progress_(progress),
        start_(start),
        results_(layers.size()) {
    const size_t n = std::min<size_t>(static_cast<size_t>(std::max(parallel, 1)), layers.size());
    for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
  }
  LayerDownloads(const LayerDownloads&) = delete;
  LayerDownloads& operator=(const LayerDownloads&) = delete;
  ~LayerDownloads() {
    {
      std::lock_guard lock(mu_);
      cancel_ = true;
    }
    for (auto& t : threads_) t.join();
  }

  Result<void> wait(size_t i) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return results_[i].has_value(); });
    if (!*results_[i]) return results_[i]->error();
    return ok();
  }

  PullStats stats() {
    std::lock_guard lock(mu_);
    PullStats s;
    for (const auto& r : results_) {
      if (!r || !*r) continue;
      const BlobFetchStats& b = **r;
      (b.cached ? s.blobs_cached : s.blobs_fetched) += 1;
      s.bytes_fetched += b.bytes_fetched;
      s.resumed_bytes += b.resumed_from;
    }
    return s;
  }

 private:
  std::chrono::milliseconds elapsed() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start_);
  }

  // The next layer to fetch, or nullopt when done or cancelled. Claiming
  // under the lock lets cancellation fail exactly the unclaimed layers.
  std::optional<size_t> claim() {
    std::lock_guard lock(mu_);
    if (cancel_ || next_ >= layers_.size()) return std::nullopt;
    return next_++;
  }

  void work() {
    while (auto claimed = claim()) {
      const size_t i = *claimed;
      const Descriptor& d = layers_[i];
      BlobProgressFn cb;
      if (progress_) {
        cb = [this, i, &d](uint64_t done, uint64_t total) {
          PullEvent ev;
          ev.kind = PullEvent::Kind::kLayerProgress;
          ev.layer = static_cast<int>(i);
          ev.layers = static_cast<int>(layers_.size());
          ev.digest = d.digest;
          ev.done = done;
          ev.total = total;
          ev.elapsed = elapsed();
          progress_(ev);
        };
      }
      auto r = store_.ensure(d, source_, policy_, cb);
      if (progress_ && r) {
        PullEvent ev;
        ev.kind = PullEvent::Kind::kLayerFetched;
        ev.layer = static_cast<int>(i);
        ev.layers = static_cast<int>(layers_.size());
        ev.digest = d.digest;
        ev.done = ev.total = static_cast<uint64_t>(d.size);
        ev.cached = r->cached;
        ev.elapsed = elapsed();
        progress_(ev);
      }
      {
        std::lock_guard lock(mu_);
        if (!r) cancel_ = true;  // the pull fails; skip the remaining layers
        results_[i] = std::move(r);
      }
      cv_.notify_all();
    }
    // Cancelled: fail what nobody will fetch, so no waiter blocks forever.
    std::lock_guard lock(mu_);
    for (size_t i = next_; i < results_.size(); ++i) {
      if (!results_[i])
        results_[i] = Result<BlobFetchStats>(Error(errc::kInternal, "pull cancelled"));
    }
    cv_.notify_all();
  }

  const BlobStore& store_;
  ImageSource& source_;
  const FetchPolicy& policy_;
  const std::vector<Descriptor>& layers_;
  const ProgressFn& progress_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::optional<Result<BlobFetchStats>>> results_;
  size_t next_ = 0;  // guarded by mu_
  std::atomic<bool> cancel_{false};
  std::vector<std::thread> threads_;
};

// Scopes name files under authz/: org ids, never a path.
Result<void> checkScope(std::string_view scope) {
  const bool valid =
      !scope.empty() && scope.size() <= 64 && std::all_of(scope.begin(), scope.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
      });
  if (valid) return ok();
  return Error(errc::kInvalidArgument, "image pull scope '" + printable(scope.substr(0, 64), 64) +
                                           "' is not an org id ([a-z0-9_-], 1 to 64 bytes)")
      .with("field", "org_id");
}

Error notCached(const Digest& d) {
  return Error(errc::kNotCached, "image " + d.str() + " is not in the cache; pull it first")
      .with("digest", d.str());
}

}  // namespace

struct ImageCache::Resolved {
  std::optional<Digest> index_digest;
  Digest manifest_digest;
  ImageManifest manifest;
};

ImageCache::ImageCache(std::string dir, CacheOptions options)
    : dir_(std::move(dir)), options_(std::move(options)), blobs_(dir_) {}

Result<ImageCache> ImageCache::open(std::string dir, CacheOptions options) {
  if (dir.empty()) return Error(errc::kInvalidArgument, "the image cache needs a directory");
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  for (const char* sub : {"/blobs/sha256", "/rootfs", "/refs", "/locks", "/tmp", "/authz"}) {
    PLFM_TRY(mkdirs(dir + sub));
  }
  // Leftovers of processes that died mid-pull (kill -9): staging trees and
  // half-built images go; partial downloads stay, to be resumed.
  removeDeadLeftovers(dir + "/tmp", "");
  // Only inside our own private parent: entries a local user planted
  // directly in /dev/shm are not ours to remove (or to follow).
  if (ensurePrivateDir(shmStagingParent())) removeDeadLeftovers(shmStagingParent(), "plfm-stage-");
  if (!options.staging_dir.empty()) removeDeadLeftovers(options.staging_dir, "plfm-stage-");
  options.limits.max_layer_bytes =
      std::min(options.limits.max_layer_bytes, options.fetch.max_blob_bytes);
  options.fetch.max_blob_bytes = options.limits.max_layer_bytes;
  return ImageCache(std::move(dir), std::move(options));
}

std::string ImageCache::rootfsPath(const Digest& d) const {
  return dir_ + "/rootfs/" + d.hex() + ".ext4";
}
std::string ImageCache::recordPath(const Digest& d) const {
  return dir_ + "/rootfs/" + d.hex() + ".json";
}
std::string ImageCache::tmpName(std::string_view what) const {
  return dir_ + "/tmp/" + std::string(what) + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(g_tmp_counter++);
}

Result<ImageCache::Staging> ImageCache::makeStaging(const ImageManifest& manifest,
                                                    bool allow_shm) const {
  // Named by mkdtemp (0700, random suffix) inside a directory only we can
  // write: a local user can neither predict the name nor plant a symlink or
  // a tree of their own where the layers are unpacked. The pid in the name
  // lets a later start remove what a killed pull left.
  const std::string prefix = "plfm-stage-" + std::to_string(::getpid()) + "-";
  Staging out;
  out.limits = options_.limits;
  if (!options_.staging_dir.empty()) {
    // The operator's choice; mkdtemp inside it is safe even in a shared /tmp.
    PLFM_TRY(mkdirs(options_.staging_dir));
    PLFM_ASSIGN_OR_RETURN(out.dir, makeTempDir(options_.staging_dir, prefix));
    return out;
  }
  uint64_t compressed = 0;
  for (const auto& l : manifest.layers) compressed += static_cast<uint64_t>(l.size);
  struct statfs fs {};
  if (allow_shm && ::statfs(kShm, &fs) == 0 && fs.f_type == TMPFS_MAGIC) {
    // At most half of the tmpfs's free space, less a reserve. The layers'
    // declared sizes must fit; the unpacked size is measured while
    // unpacking (max_image_unpacked_bytes), and a pull that outgrows the
    // room starts over on disk.
    const uint64_t free_bytes =
        static_cast<uint64_t>(fs.f_bavail) * static_cast<uint64_t>(fs.f_bsize);
    const uint64_t reserve = uint64_t{64} << 20;
    const uint64_t room = free_bytes / 2 > reserve ? free_bytes / 2 - reserve : 0;
    if (compressed < room) {
      const std::string parent = shmStagingParent();
      if (auto safe = ensurePrivateDir(parent); !safe) {
        log::warn("not staging images in /dev/shm", {{"error", safe.error().toString()}});
      } else if (auto dir = makeTempDir(parent, prefix)) {
        out.dir = std::move(*dir);
        out.on_shm = true;
        out.limits.max_image_unpacked_bytes = std::min(out.limits.max_image_unpacked_bytes, room);
        return out;
      }
    }
  }
  PLFM_ASSIGN_OR_RETURN(out.dir, makeTempDir(dir_ + "/tmp", prefix));
  return out;
}

std::string shmStagingParent() {
  return std::string(kShm) + "/plfm-stage." + std::to_string(::geteuid());
}

void ImageCache::touch(const Digest& d) const {
  const Clock& clock = options_.clock != nullptr ? *options_.clock : RealClock::instance();
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock.now().time_since_epoch()).count();
  const timespec t{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  const timespec times[2] = {t, t};
  ::utimensat(AT_FDCWD, recordPath(d).c_str(), times, 0);
}

// A manifest named by a digest whose bytes the blob store holds is read from
// there: a pinned image pulled before starts without a registry round trip,
// and while the registry is down. A tag always goes to the source.
Result<FetchedManifest> ImageCache::fetchManifest(const std::string& reference,
                                                  const std::optional<Digest>& digest,
                                                  ImageSource& source, bool cached_ok) const {
  if (cached_ok && digest && blobs_.has(*digest)) {
    auto bytes = blobs_.read(*digest, kMaxManifestBytes);
    if (bytes && Digest::of(*bytes) == *digest) return FetchedManifest{std::move(*bytes), ""};
  }
  return source.fetchManifest(reference);
}

Result<ImageCache::Resolved> ImageCache::resolve(const ImageRef& ref, const PullOptions& options,
                                                 ImageSource& source, bool cached_ok) const {
  Resolved out;
  PLFM_ASSIGN_OR_RETURN(FetchedManifest top,
                        fetchManifest(ref.reference(), ref.digest, source, cached_ok));
  const Digest top_digest = Digest::of(top.bytes);
  if (ref.digest && *ref.digest != top_digest) {
    return Error(errc::kDigestMismatch,
                 "manifest for " + ref.str() + " hashes to " + top_digest.str())
        .with("digest", ref.digest->str());
  }
  PLFM_ASSIGN_OR_RETURN(ManifestDocument doc, parseManifestDocument(top.bytes, top.content_type));
  PLFM_TRY(blobs_.put(top_digest, top.bytes));
  if (doc.manifest) {
    out.manifest_digest = top_digest;
    out.manifest = std::move(*doc.manifest);
    return out;
  }
  PLFM_ASSIGN_OR_RETURN(Descriptor chosen, selectPlatform(*doc.index, options.os,
                                                          options.architecture, options.variant));
  out.index_digest = top_digest;
  PLFM_ASSIGN_OR_RETURN(FetchedManifest m,
                        fetchManifest(chosen.digest.str(), chosen.digest, source, cached_ok));
  if (Digest::of(m.bytes) != chosen.digest) {
    return Error(errc::kDigestMismatch, "manifest " + chosen.digest.str() + " from " +
                                            source.describe() + " does not match its digest")
        .with("digest", chosen.digest.str());
  }
  PLFM_ASSIGN_OR_RETURN(
      ManifestDocument inner,
      parseManifestDocument(m.bytes, m.content_type.empty() ? chosen.media_type : m.content_type));
  if (!inner.manifest) {
    return Error(errc::kUnsupportedManifest, "index entry " + chosen.digest.str() +
                                                 " is itself an index; nested indexes are "
                                                 "not supported");
  }
  PLFM_TRY(blobs_.put(chosen.digest, m.bytes));
  out.manifest_digest = chosen.digest;
  out.manifest = std::move(*inner.manifest);
  return out;
}

Result<std::unique_ptr<ImageSource>> ImageCache::sourceFor(const ImageRef& ref,
                                                           const PullOptions& options) const {
  if (ref.transport == ImageRef::Transport::kOciLayout) {
    if (!options_.allow_oci_layout) {
      return Error(errc::kRefRefused,
                   "oci: image references name a directory on the node and are not accepted "
                   "here; push the image to a registry (the operator may allow layouts with "
                   "--allow-oci-layout-images)");
    }
    return std::unique_ptr<ImageSource>(std::make_unique<OciLayoutSource>(ref.layout_dir));
  }
  RegistryOptions ro;
  ro.insecure = options_.insecure_registries;
  if (options_.registry_allow_cidrs) {
    std::vector<IpPrefix> allow;
    for (const auto& c : *options_.registry_allow_cidrs) {
      PLFM_ASSIGN_OR_RETURN(IpPrefix p, parseIpPrefix(c));
      allow.push_back(p);
    }
    ro.address_allow = std::move(allow);
  }
  // A tenant's pull (a scope) uses its own credentials or none, never the
  // node's credentials file, which is the operator's for `image pull`.
  ro.credentials = options.credentials;
  if (!ro.credentials && options.scope.empty() && !options_.credentials_file.empty()) {
    PLFM_ASSIGN_OR_RETURN(auto creds, loadCredentialsFile(options_.credentials_file));
    ro.credentials = findCredentials(creds, ref.registry);
  }
  return std::unique_ptr<ImageSource>(std::make_unique<RegistrySource>(ref, ro));
}

std::string ImageCache::authzDir(const Digest& d) const { return dir_ + "/authz/" + d.hex(); }

bool ImageCache::authorized(const Digest& d, std::string_view scope) const {
  return checkScope(scope) && pathExists(authzDir(d) + "/" + std::string(scope));
}

Result<void> ImageCache::authorize(const Digest& top, std::string_view scope) const {
  PLFM_TRY(mkdirs(authzDir(top)));
  return writeFileAtomicUnique(authzDir(top) + "/" + std::string(scope), "");
}

Result<PulledImage> ImageCache::pull(const ImageRef& ref, const PullOptions& options,
                                     const ProgressFn& on_progress) const {
  const auto start = std::chrono::steady_clock::now();
  // Events come from the download threads as well as this one; the caller's
  // callback gets them one at a time, so it needs no lock of its own.
  std::mutex progress_mu;
  ProgressFn progress;
  if (on_progress) {
    progress = [&progress_mu, &on_progress](const PullEvent& ev) {
      std::lock_guard lock(progress_mu);
      on_progress(ev);
    };
  }
  auto elapsed = [&start] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  };
  // Shared: pulls run side by side; gc() takes it exclusively.
  PLFM_ASSIGN_OR_RETURN(FileLock cache_lock,
                        FileLock::acquire(dir_ + "/locks/cache.lock", FileLock::Mode::kShared));

  // A scoped pull of a registry image uses the cache only for what that
  // scope was authorized for; everything else is checked with the registry.
  const bool scoped = !options.scope.empty() && ref.transport == ImageRef::Transport::kRegistry;
  if (scoped) PLFM_TRY(checkScope(options.scope));
  const bool verify = scoped && !(ref.digest && authorized(*ref.digest, options.scope));
  // A local layout (operator configuration or tests) pulled for a scope
  // grants it: there is no registry to ask, and the operator chose it.
  const bool grant_local = !options.scope.empty() && !scoped;
  if (grant_local) PLFM_TRY(checkScope(options.scope));
  PLFM_ASSIGN_OR_RETURN(std::unique_ptr<ImageSource> source, sourceFor(ref, options));
  PLFM_ASSIGN_OR_RETURN(Resolved resolved, resolve(ref, options, *source, !verify));
  const Digest& md = resolved.manifest_digest;
  const ImageManifest& manifest = resolved.manifest;
  if (progress) {
    PullEvent ev;
    ev.kind = PullEvent::Kind::kResolved;
    ev.digest = md;
    ev.layers = static_cast<int>(manifest.layers.size());
    ev.elapsed = elapsed();
    progress(ev);
  }

  PulledImage out;
  out.ref = ref.str();
  out.manifest_digest = md;
  out.config_digest = manifest.config.digest;
  out.layers = manifest.layers;
  out.rootfs = rootfsPath(md);

  const Digest top = resolved.index_digest.value_or(md);
  const bool rootfs_ready = pathExists(rootfsPath(md)) && pathExists(recordPath(md));
  if (verify) {
    // What this pull will not download must be proven some other way: the
    // registry serves it to this scope (HEAD with its credentials).
    std::vector<Descriptor> blobs = manifest.layers;
    blobs.insert(blobs.begin(), manifest.config);
    for (const auto& b : blobs) {
      if (rootfs_ready || blobs_.has(b.digest)) {
        if (auto seen = source->checkBlob(b); !seen) {
          return std::move(seen).error().context("checking access to a cached image");
        }
      }
    }
  }
  PLFM_ASSIGN_OR_RETURN(BlobFetchStats cfg_stats,
                        blobs_.ensure(manifest.config, *source, options_.fetch));
  PLFM_ASSIGN_OR_RETURN(std::string cfg_bytes, blobs_.read(manifest.config.digest));
  PLFM_ASSIGN_OR_RETURN(out.config, parseImageConfig(cfg_bytes));

  if (rootfs_ready) {
    if (verify || grant_local) PLFM_TRY(authorize(top, options.scope));
    touch(md);
    out.stats.rootfs_cached = true;
    out.stats.blobs_cached = 1;
    out.rootfs_bytes = fileSize(out.rootfs);
    out.stats.seconds = static_cast<double>(elapsed().count()) / 1000.0;
    return out;
  }
  if (!out.config.diff_ids.empty() && out.config.diff_ids.size() != manifest.layers.size()) {
    return Error(errc::kBadManifest, "the manifest lists " +
                                         std::to_string(manifest.layers.size()) +
                                         " layers but the config has " +
                                         std::to_string(out.config.diff_ids.size()) + " diff_ids");
  }
  for (const auto& l : manifest.layers) {
    if (!isSupportedLayerType(l.media_type)) {
      return Error(errc::kUnsupportedLayer,
                   "layer " + l.digest.str() + " has unsupported media type '" + l.media_type + "'")
          .with("digest", l.digest.str());
    }
    if (static_cast<uint64_t>(l.size) > options_.limits.max_layer_bytes) {
      return Error(errc::kLimitExceeded, "layer " + l.digest.str() + " is " +
                                             std::to_string(l.size) + " bytes; the limit is " +
                                             std::to_string(options_.limits.max_layer_bytes))
          .with("digest", l.digest.str())
          .with("limit", "max_layer_bytes");
    }
  }

  LayerDownloads downloads(blobs_, *source, options_.fetch, manifest.layers,
                           options_.parallel_downloads, progress, start);
  bool rootfs_cached = false;
  auto built = buildRootfs(
      md, manifest, out.config, [&downloads](size_t i) { return downloads.wait(i); }, progress,
      &rootfs_cached, start);
  // Let every download finish or fail before reporting, so stats are whole.
  for (size_t i = 0; i < manifest.layers.size(); ++i) (void)downloads.wait(i);
  out.stats = downloads.stats();
  if (!built) return built.error();
  (cfg_stats.cached ? out.stats.blobs_cached : out.stats.blobs_fetched) += 1;
  out.stats.rootfs_cached = rootfs_cached;
  PLFM_TRY(writeRecord(md, resolved.index_digest, manifest, out.ref));
  if (verify || grant_local) PLFM_TRY(authorize(top, options.scope));
  touch(md);
  out.rootfs_bytes = fileSize(out.rootfs);
  out.stats.seconds = static_cast<double>(elapsed().count()) / 1000.0;
  return out;
}

Result<RootfsStats> ImageCache::buildRootfs(const Digest& md, const ImageManifest& manifest,
                                            const ImageConfig& config,
                                            const std::function<Result<void>(size_t)>& wait_layer,
                                            const ProgressFn& progress, bool* was_cached,
                                            std::chrono::steady_clock::time_point start) const {
  auto elapsed = [&start] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  };
  PLFM_ASSIGN_OR_RETURN(
      FileLock lock,
      FileLock::acquire(dir_ + "/locks/rootfs-" + md.hex() + ".lock", FileLock::Mode::kExclusive));
  if (pathExists(rootfsPath(md))) {  // a concurrent pull built it
    *was_cached = true;
    return RootfsStats{};
  }
  PLFM_ASSIGN_OR_RETURN(Staging staging, makeStaging(manifest, true));
  const std::string scratch = tmpName("scratch");
  const std::string out_tmp = tmpName("rootfs") + ".ext4";
  auto cleanup = [&] {
    (void)removeAll(staging.dir);
    (void)removeAll(scratch);
    ::unlink(out_tmp.c_str());
  };
  if (auto made = mkdirs(scratch); !made) {
    cleanup();
    return made.error();
  }
  auto run = [&](const std::string& stage, const UnpackLimits& limits) -> Result<RootfsStats> {
    LayerApplier applier(stage, limits);
    for (size_t i = 0; i < manifest.layers.size(); ++i) {
      PLFM_TRY(wait_layer(i));
      const Descriptor& l = manifest.layers[i];
      std::optional<Digest> diff_id;
      if (i < config.diff_ids.size()) diff_id = config.diff_ids[i];
      PLFM_ASSIGN_OR_RETURN(LayerStats ls, applier.apply(blobs_.path(l.digest), l.digest, diff_id));
      if (progress) {
        PullEvent ev;
        ev.kind = PullEvent::Kind::kLayerApplied;
        ev.layer = static_cast<int>(i);
        ev.layers = static_cast<int>(manifest.layers.size());
        ev.digest = l.digest;
        ev.done = ev.total = ls.tar_bytes;
        ev.elapsed = elapsed();
        progress(ev);
      }
    }
    PLFM_TRY(applier.finish());
    RootfsOptions ro = options_.rootfs;
    if (ro.uuid.empty()) {
      // Stable per image: the manifest digest's first 128 bits.
      const std::string& h = md.hex();
      ro.uuid = h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" +
                h.substr(16, 4) + "-" + h.substr(20, 12);
    }
    PLFM_ASSIGN_OR_RETURN(RootfsStats rs, buildExt4(stage, applier.fixups(), out_tmp, scratch, ro));
    if (options_.fetch.fsync) PLFM_TRY(fsyncPath(out_tmp));
    if (::rename(out_tmp.c_str(), rootfsPath(md).c_str()) != 0) {
      return errnoError("rename rootfs into place", errno);
    }
    if (options_.fetch.fsync) PLFM_TRY(fsyncParentDir(rootfsPath(md)));
    if (progress) {
      PullEvent ev;
      ev.kind = PullEvent::Kind::kRootfsBuilt;
      ev.digest = md;
      ev.done = ev.total = rs.image_bytes;
      ev.elapsed = elapsed();
      progress(ev);
    }
    return rs;
  };
  auto r = run(staging.dir, staging.limits);
  if (!r && staging.on_shm && r.error().is(errc::kLimitExceeded) &&
      r.error().detail("limit") == "max_image_unpacked_bytes" &&
      staging.limits.max_image_unpacked_bytes < options_.limits.max_image_unpacked_bytes) {
    // Measured while unpacking: larger than the tmpfs has room for.
    log::info("image outgrew the tmpfs staging room; unpacking again on disk",
              {{"digest", md.str()}, {"room", staging.limits.max_image_unpacked_bytes}});
    (void)removeAll(staging.dir);
    auto disk = makeStaging(manifest, false);
    if (!disk) {
      cleanup();
      return disk.error();
    }
    staging = std::move(*disk);
    r = run(staging.dir, staging.limits);
  }
  cleanup();
  return r;
}

Result<void> ImageCache::writeRecord(const Digest& md, const std::optional<Digest>& index,
                                     const ImageManifest& manifest, const std::string& ref) const {
  json::Json j;
  j["manifest_digest"] = md.str();
  if (index) j["index_digest"] = index->str();
  j["config_digest"] = manifest.config.digest.str();
  j["ref"] = ref;
  json::Json layers = json::Json::array();
  for (const auto& l : manifest.layers) {
    layers.push_back({{"digest", l.digest.str()}, {"size", l.size}, {"media_type", l.media_type}});
  }
  j["layers"] = std::move(layers);
  return writeFileAtomicUnique(recordPath(md), json::dump(j) + "\n");
}

Result<std::string> ImageCache::rootfs(const Digest& md) const {
  PLFM_ASSIGN_OR_RETURN(FileLock cache_lock,
                        FileLock::acquire(dir_ + "/locks/cache.lock", FileLock::Mode::kShared));
  if (pathExists(rootfsPath(md)) && pathExists(recordPath(md))) {
    touch(md);
    return rootfsPath(md);
  }
  // Rebuild from cached blobs, if all are there.
  auto bytes = blobs_.read(md);
  if (!bytes) return notCached(md);
  PLFM_ASSIGN_OR_RETURN(ManifestDocument doc, parseManifestDocument(*bytes));
  if (!doc.manifest) return notCached(md);
  const ImageManifest& m = *doc.manifest;
  auto cfg_bytes = blobs_.read(m.config.digest);
  if (!cfg_bytes) return notCached(md);
  PLFM_ASSIGN_OR_RETURN(ImageConfig cfg, parseImageConfig(*cfg_bytes));
  for (const auto& l : m.layers) {
    if (!blobs_.has(l.digest)) return notCached(md);
  }
  bool cached = false;
  PLFM_TRY(buildRootfs(
      md, m, cfg, [](size_t) { return ok(); }, nullptr, &cached, std::chrono::steady_clock::now()));
  PLFM_TRY(writeRecord(md, std::nullopt, m, ""));
  touch(md);
  return rootfsPath(md);
}

Result<PulledImage> ImageCache::image(const Digest& md) const {
  auto rec_text = readFile(recordPath(md));
  if (!rec_text) return notCached(md);
  PLFM_ASSIGN_OR_RETURN(json::Json rec, json::parse(*rec_text));
  PulledImage out;
  out.manifest_digest = md;
  PLFM_ASSIGN_OR_RETURN(out.ref, json::getString(rec, "ref"));
  PLFM_ASSIGN_OR_RETURN(std::string cd, json::getString(rec, "config_digest"));
  PLFM_ASSIGN_OR_RETURN(out.config_digest, Digest::parse(cd));
  PLFM_ASSIGN_OR_RETURN(std::string cfg_bytes, blobs_.read(out.config_digest));
  PLFM_ASSIGN_OR_RETURN(out.config, parseImageConfig(cfg_bytes));
  auto bytes = blobs_.read(md);
  if (bytes) {
    auto doc = parseManifestDocument(*bytes);
    if (doc && doc->manifest) out.layers = doc->manifest->layers;
  }
  out.rootfs = rootfsPath(md);
  out.rootfs_bytes = fileSize(out.rootfs);
  out.stats.rootfs_cached = true;
  return out;
}

nlohmann::json PulledImage::toJson() const {
  json::Json j;
  j["ref"] = ref;
  j["manifest_digest"] = manifest_digest.str();
  j["config_digest"] = config_digest.str();
  j["rootfs"] = rootfs;
  j["rootfs_bytes"] = rootfs_bytes;
  j["layers"] = layers.size();
  j["config"] = config.toJson();
  j["stats"] = {{"blobs_fetched", stats.blobs_fetched}, {"blobs_cached", stats.blobs_cached},
                {"bytes_fetched", stats.bytes_fetched}, {"resumed_bytes", stats.resumed_bytes},
                {"rootfs_cached", stats.rootfs_cached}, {"seconds", stats.seconds}};
  return j;
}

}  // namespace plfm::image
