#include "volumes.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <ctime>

#include "sys.h"

namespace plfm::init {

namespace gp = guest_proto;

namespace {

// linux/ext4.h is not part of the UAPI headers every toolchain ships.
constexpr unsigned long kExt4IocResizeFs = _IOW('f', 16, uint64_t);  // NOLINT(google-runtime-int)
constexpr int kDiskWaitMs = 5000;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

std::vector<BlockDisk> listVirtioDisks() {
  std::vector<BlockDisk> out;
  DIR* dir = ::opendir("/sys/block");
  if (dir == nullptr) return out;
  while (const dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (!name.starts_with("vd")) continue;
    auto serial = readFile("/sys/block/" + name + "/serial");
    if (serial) out.push_back({name, *serial});
  }
  ::closedir(dir);
  return out;
}

// The disk of `serial`, waiting a little for it to be probed.
Result<std::string> waitForVolumeDevice(const std::string& serial) {
  const uint64_t until = monotonicMs() + kDiskWaitMs;
  while (true) {
    auto dev = volumeDevice(serial, listVirtioDisks());
    if (dev && waitForPath(*dev, kDiskWaitMs)) return dev;
    if (monotonicMs() >= until) {
      if (dev) return fail(*dev + " did not appear");
      return dev;
    }
    const timespec pause{0, 50'000'000};
    ::nanosleep(&pause, nullptr);
  }
}

// Grows the filesystem mounted at `root` to its whole disk when the disk
// grew (an extend takes effect at the next start, or at once through
// RESIZE_VOLUME); returns the filesystem's size in bytes afterwards.
Result<uint64_t> growToDisk(const std::string& device, int root) {
  Fd dev(::open(device.c_str(), O_RDONLY | O_CLOEXEC));
  if (dev.get() < 0) return fail(errnoText("open " + device, errno));
  std::string super(1024, '\0');
  if (::pread(dev.get(), super.data(), super.size(), 1024) != 1024) {
    return fail("reading the superblock of " + device + " failed");
  }
  auto sb = parseExt4Superblock(super);
  if (!sb) return fail(sb.error());
  uint64_t bytes = 0;
  if (::ioctl(dev.get(), BLKGETSIZE64, &bytes) != 0) {
    return fail(errnoText("BLKGETSIZE64 " + device, errno));
  }
  uint64_t target = ext4GrowTarget(*sb, bytes);
  if (target == 0) return sb->blocks * sb->block_size;
  if (::ioctl(root, kExt4IocResizeFs, &target) != 0) {
    return fail(
        errnoText("growing the filesystem to " + std::to_string(target) + " blocks", errno));
  }
  logLine("grew the filesystem on " + device + " to " + std::to_string(target) + " blocks");
  return target * sb->block_size;
}

Result<uint64_t> diskBytes(const std::string& device) {
  Fd dev(::open(device.c_str(), O_RDONLY | O_CLOEXEC));
  if (dev.get() < 0) return fail(errnoText("open " + device, errno));
  uint64_t bytes = 0;
  if (::ioctl(dev.get(), BLKGETSIZE64, &bytes) != 0) {
    return fail(errnoText("BLKGETSIZE64 " + device, errno));
  }
  return bytes;
}

// Hands a fresh filesystem's root to the workload's user.
Result<void> chownIfFresh(int root, uid_t uid, gid_t gid) {
  struct stat st {};
  if (::fstat(root, &st) != 0) return fail(errnoText("stat", errno));
  if (st.st_uid != 0 || st.st_gid != 0 || (uid == 0 && gid == 0)) return {};
  const int list_fd = ::openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (list_fd < 0) return fail(errnoText("open", errno));
  DIR* dir = ::fdopendir(list_fd);
  if (dir == nullptr) {
    ::close(list_fd);
    return fail(errnoText("opendir", errno));
  }
  std::vector<std::string> entries;
  while (const dirent* e = ::readdir(dir)) {
    entries.emplace_back(e->d_name);
    if (entries.size() > 3) break;  // more than ., .. and lost+found: not fresh
  }
  ::closedir(dir);
  if (!chownFreshVolumeRoot(st.st_uid, st.st_gid, entries, uid, gid)) return {};
  if (::fchown(root, uid, gid) != 0) return fail(errnoText("chown", errno));
  return {};
}

Result<void> mountVolume(const gp::VolumeMount& v, uid_t uid, gid_t gid) {
  auto device = waitForVolumeDevice(v.serial);
  if (!device) return fail(device.error());
  {
    auto at = openDirNoFollow(v.mount, /*create=*/true, O_PATH | O_DIRECTORY);
    if (!at) return fail(at.error());
    Fd target(*at);
    // Through the fd: nothing resolves the path again between the checks
    // and the mount.
    const std::string proc_path = "/proc/self/fd/" + std::to_string(target.get());
    if (::mount(device->c_str(), proc_path.c_str(), v.fs.c_str(), MS_NODEV | MS_NOSUID, nullptr) !=
        0) {
      return fail(errnoText("mount " + *device, errno));
    }
  }
  // Opened again: the walk now crosses into the mounted filesystem's root.
  auto opened = openDirNoFollow(v.mount, /*create=*/false, O_RDONLY | O_DIRECTORY);
  if (!opened) return fail(opened.error());
  Fd root(*opened);
  if (auto grown = growToDisk(*device, root.get()); !grown) return fail(grown.error());
  return chownIfFresh(root.get(), uid, gid);
}

}  // namespace

Result<int> openDirNoFollow(const std::string& path, bool create, int last_flags) {
  const std::vector<std::string> parts = pathComponents(path);
  int dir = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return fail(errnoText("open /", errno));
  std::string walked;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    walked += "/" + part;
    const bool last = i + 1 == parts.size();
    const int flags = (last ? last_flags : O_PATH | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC;
    int next = ::openat(dir, part.c_str(), flags);
    if (next < 0 && errno == ENOENT && create) {
      if (::mkdirat(dir, part.c_str(), 0755) != 0 && errno != EEXIST) {
        const int err = errno;
        ::close(dir);
        return fail(errnoText("mkdir " + walked, err));
      }
      next = ::openat(dir, part.c_str(), flags);
    }
    if (next < 0) {
      const int err = errno;
      struct stat st {};
      const bool link =
          ::fstatat(dir, part.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
      ::close(dir);
      // An image may not redirect a volume elsewhere with a symlink.
      if (link) return fail(walked + " is a symlink");
      return fail(errnoText("open " + walked, err));
    }
    ::close(dir);
    dir = next;
  }
  return dir;
}

VolumeSys realVolumeSys() {
  VolumeSys sys;
  sys.disk_bytes = [](const std::string& serial) -> Result<uint64_t> {
    auto device = volumeDevice(serial, listVirtioDisks());
    if (!device) return fail(device.error());
    return diskBytes(*device);
  };
  sys.grow = [](const std::string& serial, const std::string& mount) -> Result<uint64_t> {
    auto device = volumeDevice(serial, listVirtioDisks());
    if (!device) return fail(device.error());
    auto opened = openDirNoFollow(mount, /*create=*/false, O_RDONLY | O_DIRECTORY);
    if (!opened) return fail(opened.error());
    Fd root(*opened);
    return growToDisk(*device, root.get());
  };
  sys.freeze = [](const std::string& mount) -> Result<int> {
    auto opened = openDirNoFollow(mount, /*create=*/false, O_RDONLY | O_DIRECTORY);
    if (!opened) return fail(opened.error());
    // FIFREEZE syncs the filesystem itself; syncfs first keeps the window
    // short by writing most dirty data before writes are blocked.
    if (::syncfs(*opened) != 0 || ::ioctl(*opened, FIFREEZE, 0) != 0) {
      const int err = errno;
      ::close(*opened);
      return fail(errnoText("freeze", err));
    }
    return *opened;
  };
  sys.thaw = [](int fd) -> Result<void> {
    Fd held(fd);
    if (::ioctl(held.get(), FITHAW, 0) != 0) return fail(errnoText("FITHAW", errno));
    return {};
  };
  return sys;
}

Result<void> mountVolumes(const gp::Config& config) {
  for (const gp::VolumeMount& v : config.volumes) {
    if (auto r = mountVolume(v, config.uid, config.gid); !r) {
      return fail("volume " + v.mount + ": " + r.error());
    }
    logLine("mounted volume " + v.serial + " at " + v.mount);
  }
  return {};
}

}  // namespace plfm::init
