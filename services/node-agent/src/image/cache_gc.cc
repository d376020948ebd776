// The ImageCache's bookkeeping: on-disk reference counts, listing, and
// garbage collection by LRU within the size budget.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>

#include "image/errors.h"
#include "image/fs_util.h"
#include "image/image_cache.h"
#include "image/json_util.h"
#include "plfm/core/json.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::image {

namespace {

constexpr size_t kMaxHolderLength = 128;

Result<void> validateHolder(std::string_view holder) {
  bool good = !holder.empty() && holder.size() <= kMaxHolderLength && holder.front() != '.';
  for (char c : holder) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    good = good && ok;
  }
  if (!good) {
    return Error(errc::kInvalidArgument,
                 "holder id must be 1-128 characters of [A-Za-z0-9._-], not starting with '.'")
        .with("field", "holder");
  }
  return ok();
}

std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* de = ::readdir(d)) {
    const std::string_view n = de->d_name;
    if (n != "." && n != "..") out.emplace_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t fileBytes(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

struct ImageEntry {
  Digest digest;
  std::string ref;
  std::set<Digest> blobs;  // manifest, index, config and layers
  Clock::WallTime last_used;
  int refs = 0;
  uint64_t rootfs_bytes = 0;
  bool record_ok = false;   // the record parsed; otherwise `blobs` came from the manifest
  bool blobs_known = true;  // false: neither the record nor the manifest blob is readable
};

// Adds the blobs an image's manifest blob names. For an image whose record is
// unreadable these are all we know: the index digest is lost with the
// record, but an index is not needed to boot, so losing that blob is harmless.
bool blobsFromManifest(const ImageCache& cache, ImageEntry& e) {
  auto bytes = cache.blobs().read(e.digest);
  if (!bytes) return false;
  auto doc = parseManifestDocument(*bytes);
  if (!doc || !doc->manifest) return false;
  e.blobs.insert(e.digest);
  e.blobs.insert(doc->manifest->config.digest);
  for (const auto& l : doc->manifest->layers) e.blobs.insert(l.digest);
  return true;
}

bool readRecord(const ImageCache& cache, ImageEntry& e) {
  auto text = readFile(cache.recordPath(e.digest));
  if (!text) return false;
  auto rec = json::parse(*text);
  if (!rec || !rec->is_object()) return false;
  e.blobs.insert(e.digest);
  auto addDigest = [&e](const json::Json& v) {
    if (!v.is_string()) return;
    if (auto d = Digest::parse(v.get_ref<const std::string&>())) e.blobs.insert(*d);
  };
  for (const char* f : {"index_digest", "config_digest"}) {
    if (const json::Json* it = findField(*rec, f); it != nullptr) addDigest(*it);
  }
  if (const json::Json* it = findField(*rec, "layers"); it != nullptr && it->is_array()) {
    for (const auto& l : *it) {
      if (const json::Json* d = findField(l, "digest"); d != nullptr) addDigest(*d);
    }
  }
  if (const json::Json* it = findField(*rec, "ref"); it != nullptr && it->is_string())
    e.ref = it->get<std::string>();
  return true;
}

// Every image the cache knows of: those with a record, and those with
// holders in refs/ (whose record may be unreadable or gone). An unreadable
// record of an image nobody holds makes it an orphan (gc removes its files);
// an image with holders is kept whatever state its record is in.
std::vector<ImageEntry> scanImages(const ImageCache& cache) {
  std::set<std::string> hexes;
  for (const auto& name : listDir(cache.dir() + "/rootfs")) {
    if (!endsWith(name, ".json")) continue;
    const std::string hex = name.substr(0, name.size() - 5);
    if (isSha256Hex(hex)) hexes.insert(hex);
  }
  for (const auto& hex : listDir(cache.dir() + "/refs")) {
    if (isSha256Hex(hex)) hexes.insert(hex);
  }
  std::vector<ImageEntry> out;
  for (const auto& hex : hexes) {
    ImageEntry e;
    e.digest = Digest::fromHex(hex);
    e.refs = static_cast<int>(listDir(cache.dir() + "/refs/" + hex).size());
    e.record_ok = readRecord(cache, e);
    // The manifest names the blobs too, so a record that parses but lacks a
    // field (hand-edited) still protects every layer.
    const bool from_manifest = blobsFromManifest(cache, e);
    if (!e.record_ok) {
      if (e.refs == 0) continue;  // an orphan
      e.blobs_known = from_manifest;
      log::warn("image record unreadable; keeping the image, it has holders",
                {{"digest", e.digest.str()}, {"holders", e.refs}});
    }
    struct stat st {};
    if (::stat(cache.recordPath(e.digest).c_str(), &st) == 0) {
      e.last_used = Clock::WallTime(std::chrono::duration_cast<Clock::WallTime::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
    }
    e.rootfs_bytes = fileBytes(cache.rootfsPath(e.digest));
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

Result<void> ImageCache::acquire(const Digest& md, std::string_view holder) const {
  PLFM_TRY(validateHolder(holder));
  PLFM_ASSIGN_OR_RETURN(FileLock lock,
                        FileLock::acquire(dir_ + "/locks/cache.lock", FileLock::Mode::kShared));
  if (!pathExists(recordPath(md)) || !pathExists(rootfsPath(md))) {
    return Error(errc::kNotCached, "image " + md.str() + " is not in the cache; pull it first")
        .with("digest", md.str());
  }
  const std::string dir = dir_ + "/refs/" + md.hex();
  PLFM_TRY(mkdirs(dir));
  const std::string path = dir + "/" + std::string(holder);
  if (!pathExists(path)) PLFM_TRY(writeFileAtomicUnique(path, ""));
  touch(md);
  return ok();
}

Result<void> ImageCache::release(const Digest& md, std::string_view holder) const {
  PLFM_TRY(validateHolder(holder));
  PLFM_ASSIGN_OR_RETURN(FileLock lock,
                        FileLock::acquire(dir_ + "/locks/cache.lock", FileLock::Mode::kShared));
  const std::string dir = dir_ + "/refs/" + md.hex();
  if (::unlink((dir + "/" + std::string(holder)).c_str()) != 0 && errno != ENOENT) {
    return errnoError("release " + md.str(), errno);
  }
  ::rmdir(dir.c_str());  // fails harmlessly while other holders remain
  touch(md);
  return ok();
}

Result<int> ImageCache::refCount(const Digest& md) const {
  return static_cast<int>(listDir(dir_ + "/refs/" + md.hex()).size());
}

Result<std::vector<CachedImage>> ImageCache::list() const {
  std::vector<CachedImage> out;
  for (auto& e : scanImages(*this)) {
    CachedImage c;
    c.manifest_digest = e.digest;
    c.ref = e.ref;
    c.rootfs = rootfsPath(e.digest);
    c.bytes = e.rootfs_bytes;
    c.refs = e.refs;
    c.last_used = e.last_used;
    out.push_back(std::move(c));
  }
  return out;
}

uint64_t ImageCache::usageBytes() const {
  return diskUsage(dir_ + "/blobs") + diskUsage(dir_ + "/rootfs") + diskUsage(dir_ + "/tmp");
}

Result<GcReport> ImageCache::gc(const std::set<Digest>& keep) const {
  // Exclusive: no pull, acquire or build runs while we delete.
  PLFM_ASSIGN_OR_RETURN(FileLock lock,
                        FileLock::acquire(dir_ + "/locks/cache.lock", FileLock::Mode::kExclusive));
  GcReport report;
  report.bytes_before = usageBytes();

  // Nothing runs now, so every temporary file is left over from a crash.
  for (const auto& name : listDir(dir_ + "/tmp")) PLFM_TRY(removeAll(dir_ + "/tmp/" + name));

  std::vector<ImageEntry> images = scanImages(*this);
  // Rootfs files without a record are half-finished pulls: orphans.
  std::set<std::string> recorded;
  for (const auto& e : images) recorded.insert(e.digest.hex());
  for (const auto& name : listDir(dir_ + "/rootfs")) {
    const std::string hex = name.substr(0, name.find('.'));
    const bool temp = name.find(".tmp") != std::string::npos;  // a killed atomic write
    if (temp || recorded.count(hex) == 0) PLFM_TRY(removeAll(dir_ + "/rootfs/" + name));
  }
  std::map<Digest, int> blob_users;
  // A held image whose record and manifest are both unreadable uses blobs we
  // cannot name: then no blob is deleted at all this time.
  bool keep_all_blobs = false;
  for (const auto& e : images) {
    for (const auto& b : e.blobs) ++blob_users[b];
    if (!e.record_ok) ++report.unreadable_records;
    keep_all_blobs = keep_all_blobs || !e.blobs_known;
  }
  if (keep_all_blobs) {
    log::warn("an image in use has no readable record or manifest; gc keeps every blob");
  }
  auto removeBlob = [&](const std::string& hex) -> Result<void> {
    if (keep_all_blobs) return ok();
    if (::unlink((dir_ + "/blobs/sha256/" + hex).c_str()) != 0 && errno != ENOENT) {
      return errnoError("remove blob sha256:" + hex, errno);
    }
    ::unlink((dir_ + "/locks/" + hex + ".lock").c_str());
    ++report.blobs_removed;
    return ok();
  };
  for (const auto& hex : listDir(dir_ + "/blobs/sha256")) {
    if (!isSha256Hex(hex) || blob_users.count(Digest::fromHex(hex)) == 0) PLFM_TRY(removeBlob(hex));
  }

  // Evict the least recently used images nobody holds until we fit.
  std::sort(images.begin(), images.end(),
            [](const ImageEntry& a, const ImageEntry& b) { return a.last_used < b.last_used; });
  uint64_t usage = usageBytes();
  for (const auto& e : images) {
    if (e.refs > 0) {
      ++report.images_in_use;
      continue;
    }
    if (keep.count(e.digest) != 0) {
      ++report.images_kept;
      continue;
    }
    if (usage <= options_.size_budget_bytes) continue;
    log::info("evicting image", {{"digest", e.digest.str()}, {"ref", e.ref}});
    ::unlink(recordPath(e.digest).c_str());
    ::unlink(rootfsPath(e.digest).c_str());
    ::unlink((dir_ + "/locks/rootfs-" + e.digest.hex() + ".lock").c_str());
    ::rmdir((dir_ + "/refs/" + e.digest.hex()).c_str());
    for (const auto& b : e.blobs) {
      if (--blob_users[b] == 0) PLFM_TRY(removeBlob(b.hex()));
    }
    ++report.images_removed;
    report.removed.push_back(e.digest);
    usage = usageBytes();
  }
  // Authorizations of manifests no longer cached go with them: the next
  // scoped pull asks the registry again.
  for (const auto& hex : listDir(dir_ + "/authz")) {
    if (!isSha256Hex(hex) || !blobs_.has(Digest::fromHex(hex))) {
      PLFM_TRY(removeAll(dir_ + "/authz/" + hex));
    }
  }
  report.bytes_after = usage;
  report.over_budget = usage > options_.size_budget_bytes;
  return report;
}

}  // namespace plfm::image
