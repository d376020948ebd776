#include "image/fs_util.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>

#include "plfm/core/process.h"

namespace plfm::image {

FileLock& FileLock::operator=(FileLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

namespace {
// The locked descriptor, or -1 when `wait` is false and the lock is taken.
Result<int> lockImpl(const std::string& path, FileLock::Mode mode, bool wait) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errnoError("open lock " + path, errno);
  int op = mode == FileLock::Mode::kShared ? LOCK_SH : LOCK_EX;
  if (!wait) op |= LOCK_NB;
  while (::flock(fd, op) != 0) {
    if (errno == EINTR) continue;
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) return -1;
    return errnoError("flock " + path, err);
  }
  return fd;
}
}  // namespace

Result<FileLock> FileLock::acquire(const std::string& path, Mode mode) {
  PLFM_ASSIGN_OR_RETURN(int fd, lockImpl(path, mode, true));
  return FileLock(fd);
}

Result<FileLock> FileLock::tryAcquire(const std::string& path, Mode mode) {
  PLFM_ASSIGN_OR_RETURN(int fd, lockImpl(path, mode, false));
  return FileLock(fd);
}

Result<void> fsyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoError("open " + path, errno);
  const int r = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (r != 0) return errnoError("fsync " + path, err);
  return ok();
}

Result<void> mkdirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Error(errc::kIo, "create directory " + path + ": " + ec.message());
  return ok();
}

Result<void> removeAll(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return Error(errc::kIo, "remove " + path + ": " + ec.message());
  return ok();
}

uint64_t diskUsage(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  if (!S_ISDIR(st.st_mode)) return static_cast<uint64_t>(st.st_blocks) * 512;
  uint64_t total = 0;  // files only: empty directories count as nothing
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat s {};
    if (::lstat(it->path().c_str(), &s) == 0 && !S_ISDIR(s.st_mode)) {
      total += static_cast<uint64_t>(s.st_blocks) * 512;
    }
  }
  return total;
}

uint64_t fileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

bool pathExists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

Result<void> writeFileAtomicUnique(const std::string& path, std::string_view data) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  PLFM_TRY(writeFileAtomic(tmp, data));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return errnoError("rename to " + path, err);
  }
  return ok();
}

Result<void> writeAll(int fd, const char* data, size_t len, const std::string& what) {
  while (len > 0) {
    const ssize_t n = ::write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError("write " + what, errno);
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return ok();
}

}  // namespace plfm::image
