#include "runtime/passed_files.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace plfm::runtime {
namespace {

// A listening Unix socket at `path` (replacing a stale one), for QEMU's
// `-chardev socket,fd=N,server=on`.
Result<int> listenUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Error(errc::kInvalidArgument, "socket path too long").with("path", path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errnoError("socket", errno);
  ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 8) != 0) {
    const int err = errno;
    ::close(fd);
    return errnoError("listening on " + path, err);
  }
  return fd;
}

// Attaches to the persistent tap `name` with `flags` (IFF_TAP | ...).
Result<int> attachTap(const std::string& name, short flags) {
  ifreq ifr{};
  if (name.size() >= sizeof(ifr.ifr_name)) {
    return Error(errc::kInvalidArgument, "tap name too long").with("tap", name);
  }
  const int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return errnoError("opening /dev/net/tun", errno);
  std::memcpy(ifr.ifr_name, name.c_str(), name.size());
  ifr.ifr_flags = flags;
  if (::ioctl(fd, TUNSETIFF, &ifr) != 0) {
    const int err = errno;
    ::close(fd);
    return errnoError("attaching to tap " + name, err);
  }
  return fd;
}

// The way QEMU would (a virtio-net header, no packet info), for
// `-netdev tap,fd=N`.
Result<int> openTap(const std::string& name) {
  return attachTap(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
}

}  // namespace

void OpenFiles::closeAll() {
  for (const int fd : fds) ::close(fd);
  fds.clear();
}

Result<OpenFiles> openPassedFiles(const std::vector<PassedFile>& files, uint32_t uid) {
  OpenFiles out;
  for (const auto& f : files) {
    Result<int> fd = -1;
    switch (f.kind) {
      case PassedFile::kRead:
        fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
        break;
      case PassedFile::kReadWrite:
      case PassedFile::kConsole: {
        const int flags = f.kind == PassedFile::kConsole ? O_WRONLY | O_CREAT | O_TRUNC : O_RDWR;
        fd = ::open(f.path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, 0600);
        // QEMU reopens it through /proc/self/fd as the VMM's uid.
        if (*fd >= 0 && uid != 0 && ::fchown(*fd, uid, uid) != 0) {
          const int err = errno;
          ::close(*fd);
          out.closeAll();
          return errnoError("handing " + f.path + " to the VMM's uid", err);
        }
        break;
      }
      case PassedFile::kListen:
        fd = listenUnix(f.path);
        break;
      case PassedFile::kTap:
        fd = openTap(f.path);
        break;
    }
    if (!fd || *fd < 0) {
      Error e = !fd ? fd.error() : errnoError("opening " + f.path, errno);
      out.closeAll();
      return e;
    }
    out.fds.push_back(*fd);
  }
  return out;
}

std::vector<FileGrant> grantsFor(const std::vector<PassedFile>& files) {
  std::vector<FileGrant> grants;
  for (const auto& f : files) {
    if (f.kind == PassedFile::kRead) grants.push_back({f.path, FileGrant::kRead});
    if (f.kind == PassedFile::kReadWrite || f.kind == PassedFile::kConsole) {
      grants.push_back({f.path, FileGrant::kReadWrite});
    }
  }
  return grants;
}

std::string passedFdPath(size_t index) { return "/proc/self/fd/" + std::to_string(3 + index); }

Result<void> setTapOwner(const std::string& name, uint32_t uid) {
  PLFM_ASSIGN_OR_RETURN(const int fd, attachTap(name, IFF_TAP | IFF_NO_PI));
  int rc = ::ioctl(fd, TUNSETOWNER, static_cast<unsigned long>(uid));
  if (rc == 0) rc = ::ioctl(fd, TUNSETGROUP, static_cast<unsigned long>(uid));
  const int err = errno;
  ::close(fd);
  if (rc != 0) return errnoError("handing tap " + name + " to the VMM's uid", err);
  return ok();
}

ConfineRequest confineRequestFor(const VmSpec& spec, const std::vector<PassedFile>& files) {
  ConfineRequest req;
  req.instance_id = spec.instance_id;
  req.vcpus = spec.vcpus;
  req.memory_mb = spec.memory_mb;
  req.files = grantsFor(files);
  return req;
}

}  // namespace plfm::runtime
