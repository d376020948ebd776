#include "image/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "image/errors.h"
#include "image/fs_util.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/core/sha256.h"

namespace plfm::image {

namespace {

// Streams into the partial file and the hasher; enforces the declared size.
class PartialWriter final : public BlobWriter {
 public:
  PartialWriter(int fd, std::string path, const Descriptor& desc, const BlobProgressFn& progress)
      : fd_(fd), path_(std::move(path)), desc_(desc), progress_(progress) {}

  // Hashes what an earlier, interrupted download left behind.
  Result<void> adoptExisting() {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return errnoError("stat " + path_, errno);
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size > static_cast<uint64_t>(desc_.size)) return restart();
    std::vector<char> buf(1 << 20);
    uint64_t done = 0;
    while (done < size) {
      const ssize_t n = ::pread(fd_, buf.data(), buf.size(), static_cast<off_t>(done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errnoError("read " + path_, errno);
      }
      if (n == 0) break;
      hasher_.update(buf.data(), static_cast<size_t>(n));
      done += static_cast<uint64_t>(n);
    }
    offset_ = done;
    if (::lseek(fd_, static_cast<off_t>(offset_), SEEK_SET) < 0) {
      return errnoError("seek " + path_, errno);
    }
    return ok();
  }

  Result<void> write(const char* data, size_t len) override {
    if (offset_ + len > static_cast<uint64_t>(desc_.size)) {
      return Error(errc::kSizeMismatch, "blob " + desc_.digest.str() + " is larger than the " +
                                            std::to_string(desc_.size) +
                                            " bytes its descriptor declares")
          .with("digest", desc_.digest.str());
    }
    hasher_.update(data, len);
    PLFM_TRY(writeAll(fd_, data, len, path_));
    offset_ += len;
    fetched_ += len;
    if (progress_) progress_(offset_, static_cast<uint64_t>(desc_.size));
    return ok();
  }

  Result<void> restart() override {
    if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) < 0) {
      return errnoError("truncate " + path_, errno);
    }
    hasher_ = Sha256();
    offset_ = 0;
    return ok();
  }

  [[nodiscard]] uint64_t offset() const override { return offset_; }
  [[nodiscard]] uint64_t fetched() const { return fetched_; }
  std::string finish() { return hasher_.hexDigest(); }

 private:
  int fd_;
  std::string path_;
  const Descriptor& desc_;
  const BlobProgressFn& progress_;
  Sha256 hasher_;
  uint64_t offset_ = 0;
  uint64_t fetched_ = 0;
};

Error mismatch(const Descriptor& desc, const std::string& got, uint64_t size) {
  return Error(errc::kDigestMismatch,
               "blob " + desc.digest.str() + " failed verification: its content hashes to sha256:" +
                   got + " (" + std::to_string(size) + " bytes); the partial download was deleted")
      .with("digest", desc.digest.str())
      .with("actual", "sha256:" + got);
}

}  // namespace

BlobStore::BlobStore(std::string cache_dir) : dir_(std::move(cache_dir)) {}

std::string BlobStore::path(const Digest& d) const { return dir_ + "/blobs/sha256/" + d.hex(); }
std::string BlobStore::partialPath(const Digest& d) const {
  return dir_ + "/tmp/" + d.hex() + ".partial";
}
std::string BlobStore::lockPath(const Digest& d) const {
  return dir_ + "/locks/" + d.hex() + ".lock";
}

bool BlobStore::has(const Digest& d) const { return pathExists(path(d)); }

Result<std::string> BlobStore::read(const Digest& d, size_t max_bytes) const {
  struct stat st {};
  const std::string p = path(d);
  if (::stat(p.c_str(), &st) != 0) {
    return Error(errc::kNotFound, "blob " + d.str() + " is not in the cache")
        .with("digest", d.str());
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return Error(errc::kResourceExhausted, "blob " + d.str() + " is too large to read whole")
        .with("digest", d.str());
  }
  return readFile(p);
}

Result<void> BlobStore::put(const Digest& d, std::string_view bytes) const {
  if (has(d)) return ok();
  const Digest actual = Digest::of(bytes);
  if (actual != d) {
    return Error(errc::kDigestMismatch, "content for " + d.str() + " hashes to " + actual.str())
        .with("digest", d.str())
        .with("actual", actual.str());
  }
  return writeFileAtomicUnique(path(d), bytes);
}
Result<BlobFetchStats> BlobStore::ensure(const Descriptor& desc, ImageSource& source,
                                         const FetchPolicy& policy,
                                         const BlobProgressFn& progress) const {
  BlobFetchStats stats;
  const auto declared = static_cast<uint64_t>(desc.size);
  if (declared > policy.max_blob_bytes) {
    return Error(errc::kLimitExceeded, "blob " + desc.digest.str() + " is " +
                                           std::to_string(declared) + " bytes; the limit is " +
                                           std::to_string(policy.max_blob_bytes))
        .with("digest", desc.digest.str())
        .with("limit", "max_layer_bytes");
  }
  if (has(desc.digest)) {
    stats.cached = true;
    if (progress) progress(declared, declared);
    return stats;
  }
  // One downloader per blob across threads and processes; the others wait
  // here and then find the blob stored.
  PLFM_ASSIGN_OR_RETURN(FileLock lock,
                        FileLock::acquire(lockPath(desc.digest), FileLock::Mode::kExclusive));
  if (has(desc.digest)) {
    stats.cached = true;
    if (progress) progress(declared, declared);
    return stats;
  }
  const std::string partial = partialPath(desc.digest);
  UniqueFd fd(::open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) return errnoError("open " + partial, errno);
  PartialWriter writer(fd.get(), partial, desc, progress);
  PLFM_TRY(writer.adoptExisting());
  stats.resumed_from = writer.offset();
  if (stats.resumed_from > 0) {
    log::info("resuming blob download",
              {{"digest", desc.digest.str()}, {"offset", stats.resumed_from}});
  }

  auto backoff = policy.backoff;
  Result<void> fetched = ok();
  for (int attempt = 1; attempt <= policy.attempts; ++attempt) {
    stats.attempts = attempt;
    if (writer.offset() == declared) {
      fetched = ok();
      break;
    }
    fetched = source.fetchBlob(desc, writer);
    if (fetched && writer.offset() != declared) {
      fetched = Error(errc::kUnavailable, "blob " + desc.digest.str() + " ended after " +
                                              std::to_string(writer.offset()) + " of " +
                                              std::to_string(declared) + " bytes");
    }
    if (fetched || !isRetryable(fetched.error()) || attempt == policy.attempts) break;
    log::warn("blob download failed; retrying", {{"digest", desc.digest.str()},
                                                 {"attempt", attempt},
                                                 {"offset", writer.offset()},
                                                 {"error", fetched.error().toString()}});
    std::this_thread::sleep_for(backoff);
    backoff *= 2;
  }
  stats.bytes_fetched = writer.fetched();
  if (!fetched) {
    if (fetched.error().is(errc::kSizeMismatch)) ::unlink(partial.c_str());
    return fetched.error().context("fetching " + desc.digest.str() + " from " + source.describe());
  }
  const std::string got = writer.finish();
  if (got != desc.digest.hex()) {
    ::unlink(partial.c_str());
    return mismatch(desc, got, writer.offset());
  }
  if (policy.fsync && ::fsync(fd.get()) != 0) return errnoError("fsync " + partial, errno);
  if (::rename(partial.c_str(), path(desc.digest).c_str()) != 0) {
    return errnoError("rename " + partial, errno);
  }
  if (policy.fsync) PLFM_TRY(fsyncParentDir(path(desc.digest)));
  return stats;
}

}  // namespace plfm::image
