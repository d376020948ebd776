#include "agent/volume_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "agent/errors.h"
#include "plfm/core/process.h"

namespace plfm::agent {
namespace fs = std::filesystem;

namespace {

Error ioError(const std::string& what, int err) {
  return Error(errc::kIo, what + ": " + std::strerror(err));
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

VolumeStore::VolumeStore(std::string dir, std::string mkfs)
    : dir_(std::move(dir)), mkfs_(std::move(mkfs)) {}

Result<void> VolumeStore::open() {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return Error(errc::kIo, "creating " + dir_ + ": " + ec.message());
  fs::permissions(dir_, fs::perms::owner_all, ec);
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.ends_with(".tmp") || name.ends_with(".tmp.log")) fs::remove(e.path(), ec);
  }
  return ok();
}

std::string VolumeStore::pathFor(const std::string& volume_id) const {
  return dir_ + "/" + volume_id + ".ext4";
}

std::optional<uint64_t> VolumeStore::size(const std::string& volume_id) const {
  struct stat st {};
  if (::lstat(pathFor(volume_id).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

Result<void> VolumeStore::create(const std::string& path, uint64_t size_bytes) {
  // Made under a temporary name and renamed when formatted, so a crash never
  // leaves a volume file that looks ready but holds no filesystem.
  const std::string tmp = path + ".tmp";
  std::error_code ec;
  fs::remove(tmp, ec);
  {
    Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)};
    if (f.fd < 0) return ioError("creating " + tmp, errno);
    if (::ftruncate(f.fd, static_cast<off_t>(size_bytes)) != 0) {
      const int err = errno;
      fs::remove(tmp, ec);
      return ioError("sizing " + tmp, err);
    }
  }
  SpawnOptions so;
  so.stdout_path = tmp + ".log";
  // A fresh sparse file reads as zeros, so the inode tables and the journal
  // need not be written now: the file stays sparse and mkfs takes
  // milliseconds whatever the size.
  auto r = runChecked(
      {mkfs_, "-q", "-F", "-E", "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1", tmp}, so);
  const std::string mkfs_log = readFile(tmp + ".log").value_or("");
  fs::remove(tmp + ".log", ec);
  if (!r) {
    fs::remove(tmp, ec);
    return Error(errc::kIo, "formatting the volume: " + r.error().message() +
                                (mkfs_log.empty() ? "" : ": " + mkfs_log.substr(0, 200)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    fs::remove(tmp, ec);
    return ioError("renaming " + tmp, err);
  }
  return ok();
}

Result<uint64_t> VolumeStore::ensure(const std::string& volume_id, uint64_t size_bytes) {
  std::lock_guard lock(files_mu_);
  const std::string path = pathFor(volume_id);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return ioError("reading " + path, errno);
    PLFM_TRY(create(path, size_bytes));
    return size_bytes;
  }
  Fd f{::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC)};
  if (f.fd < 0) return ioError("opening " + path, errno);
  if (::fstat(f.fd, &st) != 0) return ioError("reading " + path, errno);
  if (!S_ISREG(st.st_mode)) return Error(errc::kFailedPrecondition, path + " is not a file");
  if (static_cast<uint64_t>(st.st_size) >= size_bytes) return static_cast<uint64_t>(st.st_size);
  // Growing the file is all the host does; the guest grows the filesystem
  // (EXT4_IOC_RESIZE_FS) when it sees the bigger disk.
  if (::ftruncate(f.fd, static_cast<off_t>(size_bytes)) != 0) {
    return ioError("growing " + path, errno);
  }
  return size_bytes;
}

Result<void> VolumeStore::claim(const std::string& instance_id,
                                const std::vector<WorkloadVolume>& volumes) {
  std::lock_guard lock(claims_mu_);
  for (const auto& v : volumes) {
    auto it = holders_.find(v.volume_id);
    if (it != holders_.end() && it->second != instance_id) {
      return Error(errc::kVolumeInUse, "volume " + v.name + " is in use by instance " + it->second);
    }
  }
  for (const auto& v : volumes) holders_[v.volume_id] = instance_id;
  return ok();
}

void VolumeStore::release(const std::string& instance_id) {
  std::lock_guard lock(claims_mu_);
  std::erase_if(holders_, [&](const auto& h) { return h.second == instance_id; });
}

std::optional<std::string> VolumeStore::holder(const std::string& volume_id) const {
  std::lock_guard lock(claims_mu_);
  auto it = holders_.find(volume_id);
  if (it == holders_.end()) return std::nullopt;
  return it->second;
}

Result<void> VolumeStore::remove(const std::string& volume_id) {
  std::lock_guard lock(files_mu_);
  if (auto h = holder(volume_id)) {
    return Error(errc::kVolumeInUse, "volume " + volume_id + " is in use by instance " + *h);
  }
  const std::string path = pathFor(volume_id);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ioError("removing " + path, errno);
  return ok();
}

uint64_t VolumeStore::capacityBytes() const {
  struct statvfs st {};
  if (::statvfs(dir_.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
}

}  // namespace plfm::agent
