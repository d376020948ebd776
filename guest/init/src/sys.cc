#include "sys.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>

#include "plfm/secrets/format.h"

namespace plfm::init {

void logLine(std::string_view message) {
  std::string line = "vt-init: ";
  line += message;
  line += '\n';
  // The console is best effort; nothing to do if it fails.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

std::string errnoText(std::string_view what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

void closeFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void childFail(int report_fd, int stage) {
  const int msg[2] = {stage, errno};
  [[maybe_unused]] ssize_t n = ::write(report_fd, msg, sizeof msg);
  ::_exit(127);
}

std::vector<char*> cStringArray(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

Result<std::string> readFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errnoText("open " + path, errno));
  std::string out;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail(errnoText("read " + path, err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Result<void> mkdirs(const std::string& path, mode_t mode) {
  for (size_t at = 1; at <= path.size(); ++at) {
    if (at != path.size() && path[at] != '/') continue;
    const std::string prefix = path.substr(0, at);
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return fail(errnoText("mkdir " + prefix, errno));
    }
  }
  return {};
}

Result<void> writeFileAtomic(const std::string& path, std::string_view content, mode_t mode,
                             uid_t uid, gid_t gid) {
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return fail(errnoText("create " + tmp, errno));
  auto bail = [&](const std::string& what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail(errnoText(what, err));
  };
  if (::fchown(fd, uid, gid) != 0) return bail("chown " + tmp);
  if (::fchmod(fd, mode) != 0) return bail("chmod " + tmp);
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return bail("write " + tmp);
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(errnoText("rename " + path, errno));
  return {};
}

Result<void> loadModules(const std::string& dir, const std::vector<std::string>& files) {
  for (const std::string& file : files) {
    std::string path = dir;
    path += '/';
    path += file;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(errnoText("open module " + path, errno));
    const long rc = ::syscall(SYS_finit_module, fd, "", 0);  // NOLINT(google-runtime-int)
    const int err = errno;
    ::close(fd);
    if (rc != 0 && err != EEXIST) return fail(errnoText("finit_module " + file, err));
  }
  return {};
}

Result<void> writeKernelParameter(const std::string& path, std::string_view value) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? Result<void>{} : fail(errnoText("open " + path, errno));
  const ssize_t n = ::write(fd, value.data(), value.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size())) return fail(errnoText("write " + path, err));
  return {};
}

Result<void> runMounts(const std::vector<MountStep>& steps) {
  for (const MountStep& s : steps) {
    auto made = mkdirs(s.target);
    if (!made) return made;
    const int rc = s.kind == MountStep::Kind::kMove
                       ? ::mount(s.source.c_str(), s.target.c_str(), nullptr, MS_MOVE, nullptr)
                       : ::mount(s.source.c_str(), s.target.c_str(), s.fstype.c_str(), s.flags,
                                 s.data.empty() ? nullptr : s.data.c_str());
    if (rc != 0) {
      return fail(errnoText(
          (s.kind == MountStep::Kind::kMove ? "move " : "mount ") + s.source + " on " + s.target,
          errno));
    }
    for (const std::string& d : s.mkdirs) {
      auto sub = mkdirs(d);
      if (!sub) return sub;
    }
  }
  return {};
}

Result<void> switchRoot(const std::string& new_root) {
  if (::chdir(new_root.c_str()) != 0) return fail(errnoText("chdir " + new_root, errno));
  if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) {
    return fail(errnoText("move " + new_root + " to /", errno));
  }
  if (::chroot(".") != 0) return fail(errnoText("chroot", errno));
  if (::chdir("/") != 0) return fail(errnoText("chdir /", errno));
  return {};
}

bool waitForPath(const std::string& path, int timeout_ms) {
  const uint64_t deadline = monotonicMs() + static_cast<uint64_t>(timeout_ms);
  while (::access(path.c_str(), F_OK) != 0) {
    if (monotonicMs() >= deadline) return false;
    ::usleep(10'000);
  }
  return true;
}

Result<void> setHostname(const std::string& name) {
  if (::sethostname(name.data(), name.size()) != 0) return fail(errnoText("sethostname", errno));
  return {};
}

Result<void> writeSecretsFile(std::string_view content, uid_t uid, gid_t gid) {
  const std::string path(secrets::kGuestPath);
  const std::string dir = path.substr(0, path.rfind('/'));
  if (::mkdir(dir.c_str(), 0500) != 0 && errno != EEXIST) {
    return fail(errnoText("mkdir " + dir, errno));
  }
  if (::chown(dir.c_str(), uid, gid) != 0) return fail(errnoText("chown " + dir, errno));
  if (::chmod(dir.c_str(), 0500) != 0) return fail(errnoText("chmod " + dir, errno));
  return writeFileAtomic(path, content, secrets::kGuestFileMode, uid, gid);
}

namespace {
uint64_t clockNs(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

Result<void> setRealtime(uint64_t ns) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000u);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000u);  // NOLINT(google-runtime-int)
  if (::clock_settime(CLOCK_REALTIME, &ts) != 0) return fail(errnoText("clock_settime", errno));
  return {};
}

uint64_t bootNs() { return clockNs(CLOCK_BOOTTIME); }
uint64_t realtimeNs() { return clockNs(CLOCK_REALTIME); }
uint64_t monotonicMs() { return clockNs(CLOCK_MONOTONIC) / 1'000'000u; }

void powerOff() {
  // Everything but PID 1; the workload has been reaped or gets no more grace.
  ::kill(-1, SIGKILL);
  ::sync();
  // Power-off goes through ACPI. A kernel without it (the minimal kernel under
  // QEMU microvm with acpi=off) would only halt and leave the VMM running, so
  // it reboots instead: the VMMs turn a reboot into their exit (-no-reboot).
  const bool acpi = ::access("/sys/firmware/acpi", F_OK) == 0;
  ::reboot(acpi ? RB_POWER_OFF : RB_AUTOBOOT);
  // reboot only returns on error; PID 1 must not exit (that panics).
  while (true) ::pause();
}

}  // namespace plfm::init
