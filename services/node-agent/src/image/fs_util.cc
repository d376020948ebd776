#include "image/fs_util.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "image/errors.h"
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

namespace {
// Copies [off, off + len) of `in` to the same offset of `out`.
Result<void> copyRange(int in, int out, off_t off, off_t len, const std::string& what) {
  off_t in_off = off;
  off_t out_off = off;
  while (len > 0) {
    const ssize_t n = ::copy_file_range(in, &in_off, out, &out_off, static_cast<size_t>(len), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
      // No in-kernel copy here: read and write.
      std::string buf(size_t{1} << 20, '\0');
      while (len > 0) {
        const ssize_t r = ::pread(in, buf.data(), std::min<size_t>(buf.size(), len), in_off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return errnoError("read " + what, r < 0 ? errno : EIO);
        PLFM_TRY(writeAll(out, buf.data(), static_cast<size_t>(r), what));
        in_off += r;
        len -= r;
      }
      return ok();
    }
    if (n <= 0) return errnoError("copy " + what, n < 0 ? errno : EIO);
    len -= n;
  }
  return ok();
}
}  // namespace

Result<void> copySparseFile(const std::string& from, const std::string& to, mode_t mode) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return errnoError("open " + from, errno);
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return errnoError("stat " + from, errno);
  ::unlink(to.c_str());
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (out.get() < 0) return errnoError("create " + to, errno);
  if (::ioctl(out.get(), FICLONE, in.get()) == 0) return ok();
  if (::ftruncate(out.get(), st.st_size) != 0) return errnoError("size " + to, errno);
  off_t pos = 0;
  while (pos < st.st_size) {
    const off_t data = ::lseek(in.get(), pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0) return copyRange(in.get(), out.get(), pos, st.st_size - pos, to);
    off_t hole = ::lseek(in.get(), data, SEEK_HOLE);
    if (hole < 0) hole = st.st_size;
    PLFM_TRY(copyRange(in.get(), out.get(), data, hole - data, to));
    pos = hole;
  }
  return ok();
}

Result<void> mkdirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Error(errc::kIo, "create directory " + path + ": " + ec.message());
  return ok();
}

Result<void> ensurePrivateDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return errnoError("create directory " + dir, errno);
  }
  auto unsafe = [&](const std::string& why) {
    return Error(errc::kUnsafeDir, dir + " " + why + "; refusing to stage images in it")
        .with("path", dir);
  };
  // O_NOFOLLOW: a symlink planted at the name is refused, never followed.
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) return unsafe("is not a directory");
  if (fd < 0) return errnoError("open " + dir, errno);
  struct stat st {};
  const int r = ::fstat(fd, &st);
  ::close(fd);
  if (r != 0) return errnoError("stat " + dir, errno);
  if (st.st_uid != ::geteuid()) {
    return unsafe("belongs to uid " + std::to_string(st.st_uid) + ", not to us");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) return unsafe("is writable by group or others");
  return ok();
}

Result<std::string> makeTempDir(const std::string& parent, const std::string& prefix) {
  std::string tmpl = parent + "/" + prefix + "XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return errnoError("mkdtemp in " + parent, errno);
  return tmpl;
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
  // plfm::writeFileAtomic names its temp file uniquely per call and fsyncs
  // the directory after the rename.
  return writeFileAtomic(path, data);
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
