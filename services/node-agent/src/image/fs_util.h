// Small POSIX file helpers for the node agent and its image cache: advisory
// file locks (flock) shared between threads and
// processes, sparse copies, private directories and tree removal (fsync:
// plfm/core/process.h).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "plfm/core/result.h"
#include "plfm/core/unique_fd.h"

namespace plfm::image {

using plfm::UniqueFd;  // plfm/core/unique_fd.h

// An flock(2) lock on a lock file, held until destruction. Each FileLock
// opens its own file description, so two threads of one process exclude each
// other just like two processes do. The kernel drops the lock when the
// holder dies (kill -9 included), so a crash never leaves a stale lock.
class FileLock {
 public:
  enum class Mode { kShared, kExclusive };
  FileLock() = default;
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock& operator=(FileLock&& o) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

  // Blocks until the lock is held.
  [[nodiscard]] static Result<FileLock> acquire(const std::string& path, Mode mode);
  // nullopt-like: an invalid lock when someone else holds it.
  [[nodiscard]] static Result<FileLock> tryAcquire(const std::string& path, Mode mode);
  [[nodiscard]] bool held() const { return fd_ >= 0; }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

[[nodiscard]] Result<void> mkdirs(const std::string& path);
// Removes a file or a whole tree; a missing path is fine.
[[nodiscard]] Result<void> removeAll(const std::string& path);
// Bytes on disk (allocated blocks) of a file, or of the files in a tree; 0
// when missing.
[[nodiscard]] uint64_t diskUsage(const std::string& path);
[[nodiscard]] bool pathExists(const std::string& path);
// st_size of a file; 0 when missing.
[[nodiscard]] uint64_t fileSize(const std::string& path);
// Creates `dir` (mode 0700) when missing, then checks that it is private: a
// directory and not a symlink, owned by our effective uid, and not writable
// by group or others. For the parent of staging trees on a shared tmpfs,
// where any local user can create a name first. image.unsafe_dir otherwise.
[[nodiscard]] Result<void> ensurePrivateDir(const std::string& dir);
// A new directory "<parent>/<prefix>XXXXXX" (mode 0700, random suffix, made
// by mkdtemp so it never reuses or follows an existing name).
[[nodiscard]] Result<std::string> makeTempDir(const std::string& parent, const std::string& prefix);
// plfm::writeFileAtomic with mode 0644: its temp file name is unique per
// call, so threads of one process may write the same path at once (last
// rename wins, and every version is whole).
[[nodiscard]] Result<void> writeFileAtomicUnique(const std::string& path, std::string_view data);
// Copies file `from` to a new file `to` (mode `mode`; an existing `to` is
// replaced) keeping its holes: a reflink where the filesystem can, else only
// the data extents (SEEK_DATA/SEEK_HOLE, copy_file_range). A sparse 1 GiB
// disk image with a few MiB of metadata copies in milliseconds.
[[nodiscard]] Result<void> copySparseFile(const std::string& from, const std::string& to,
                                          mode_t mode);
// Writes all of `len` bytes, retrying short writes and EINTR.
[[nodiscard]] Result<void> writeAll(int fd, const char* data, size_t len, const std::string& what);

}  // namespace plfm::image
