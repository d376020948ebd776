#include "runtime/confine.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <utility>

namespace plfm::runtime {
namespace fs = std::filesystem;

namespace {

// Landlock access rights by ABI (uapi/linux/landlock.h; the system headers
// may predate the newer ones, so they are spelled out here).
constexpr uint64_t kFsExecute = 1ULL << 0;
constexpr uint64_t kFsWriteFile = 1ULL << 1;
constexpr uint64_t kFsReadFile = 1ULL << 2;
constexpr uint64_t kFsReadDir = 1ULL << 3;
constexpr uint64_t kFsRemoveFile = 1ULL << 5;
constexpr uint64_t kFsMakeSock = 1ULL << 9;
constexpr uint64_t kFsAbi1 = (1ULL << 13) - 1;  // EXECUTE .. MAKE_SYM
constexpr uint64_t kFsRefer = 1ULL << 13;       // ABI 2
constexpr uint64_t kFsTruncate = 1ULL << 14;    // ABI 3
constexpr uint64_t kFileRights = kFsExecute | kFsWriteFile | kFsReadFile | kFsTruncate;
constexpr uint64_t kNetBindTcp = 1ULL << 0;  // ABI 4
constexpr uint64_t kNetConnectTcp = 1ULL << 1;
constexpr uint64_t kScopeAbstractUnix = 1ULL << 0;  // ABI 6
constexpr uint64_t kScopeSignal = 1ULL << 1;

struct RulesetAttr {  // struct landlock_ruleset_attr, ABI 6 layout
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

struct __attribute__((packed)) PathBeneathAttr {  // struct landlock_path_beneath_attr
  uint64_t allowed_access;
  int32_t parent_fd;
};

uint64_t handledFs(int abi) {
  uint64_t v = kFsAbi1;
  if (abi >= 2) v |= kFsRefer;
  if (abi >= 3) v |= kFsTruncate;
  return v;
}

Result<int> createRuleset(int abi) {
  RulesetAttr attr{handledFs(abi), 0, 0};
  size_t size = sizeof(uint64_t);
  if (abi >= 4) {
    attr.handled_access_net = kNetBindTcp | kNetConnectTcp;
    size = 2 * sizeof(uint64_t);
  }
  if (abi >= 6) {
    attr.scoped = kScopeAbstractUnix | kScopeSignal;
    size = sizeof(attr);
  }
  const long fd = ::syscall(SYS_landlock_create_ruleset, &attr, size, 0);
  if (fd < 0) return errnoError("landlock_create_ruleset", errno);
  return static_cast<int>(fd);
}

Result<void> addRule(int ruleset, int abi, const std::string& path, uint64_t access) {
  const int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0) return errnoError("landlock rule for " + path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return errnoError("landlock rule for " + path, err);
  }
  if (!S_ISDIR(st.st_mode)) access &= kFileRights;
  access &= handledFs(abi);
  PathBeneathAttr attr{access, fd};
  const long r = ::syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &attr, 0);
  const int err = errno;
  ::close(fd);
  if (r != 0) return errnoError("landlock rule for " + path, err);
  return ok();
}

uint32_t fnv1a(std::string_view s) {
  uint32_t h = 2166136261U;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619U;
  }
  return h;
}

// Uids some live process runs as (the owner of /proc/PID is its euid).
std::set<uint32_t> uidsInUse() {
  std::set<uint32_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    struct stat st {};
    if (::stat(e.path().c_str(), &st) == 0) out.insert(st.st_uid);
  }
  return out;
}

// Per-instance uid: a hash of the instance id, moved on past any uid a live
// process holds or that was handed out in the last minute (a VMM between
// prepare() and exec holds none yet).
Result<uint32_t> allocateUid(const ConfineOptions& o, const std::string& instance_id) {
  static std::mutex mu;
  static std::map<uint32_t, std::pair<std::string, std::chrono::steady_clock::time_point>> recent;
  std::lock_guard lock(mu);
  const auto now = std::chrono::steady_clock::now();
  for (auto it = recent.begin(); it != recent.end();) {
    it = now - it->second.second > std::chrono::minutes(1) ? recent.erase(it) : std::next(it);
  }
  const std::set<uint32_t> used = uidsInUse();
  const uint32_t start = fnv1a(instance_id) % o.uid_count;
  for (uint32_t i = 0; i < o.uid_count && i < 65536; ++i) {
    const uint32_t uid = o.uid_base + (start + i) % o.uid_count;
    auto r = recent.find(uid);
    const bool reserved = r != recent.end() && r->second.first != instance_id;
    if (used.count(uid) != 0 || reserved) continue;
    recent[uid] = {instance_id, now};
    return uid;
  }
  return Error(errc::kResourceExhausted, "no free VMM uid in the configured range");
}

// A node of each requested character device, owned by `uid` and 0600, in
// the request's device dir: (node, usual path) pairs.
Result<std::vector<std::pair<std::string, std::string>>> makeDeviceNodes(
    const ConfineRequest& request, uint32_t uid) {
  if (request.device_dir.empty()) {
    return Error(errc::kInvalidArgument, "device nodes need a device dir");
  }
  if (::mkdir(request.device_dir.c_str(), 0711) != 0 && errno != EEXIST) {
    return errnoError("creating " + request.device_dir, errno);
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& path : request.devices) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errnoError("the VMM needs " + path, errno);
    if (!S_ISCHR(st.st_mode)) {
      return Error(errc::kFailedPrecondition, path + " is not a character device");
    }
    const std::string node = request.device_dir + "/dev" + std::to_string(out.size());
    ::unlink(node.c_str());
    if (::mknod(node.c_str(), S_IFCHR | 0600, st.st_rdev) != 0 ||
        ::chown(node.c_str(), uid, uid) != 0) {
      return errnoError("making the VMM's own node of " + path, errno);
    }
    out.emplace_back(node, path);
  }
  return out;
}

}  // namespace

int landlockAbi() {
  const long v =
      ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return v < 0 ? 0 : static_cast<int>(v);
}

Confinement::Confinement(Confinement&& o) noexcept
    : uid_(o.uid_),
      abi_(o.abi_),
      ruleset_fd_(std::exchange(o.ruleset_fd_, -1)),
      procs_fds_(std::move(o.procs_fds_)),
      device_binds_(std::move(o.device_binds_)) {
  o.procs_fds_.clear();
}

Confinement& Confinement::operator=(Confinement&& o) noexcept {
  if (this != &o) {
    if (ruleset_fd_ >= 0) ::close(ruleset_fd_);
    for (const int fd : procs_fds_) ::close(fd);
    uid_ = o.uid_;
    abi_ = o.abi_;
    ruleset_fd_ = std::exchange(o.ruleset_fd_, -1);
    procs_fds_ = std::move(o.procs_fds_);
    o.procs_fds_.clear();
    device_binds_ = std::move(o.device_binds_);
  }
  return *this;
}

Confinement::~Confinement() {
  if (ruleset_fd_ >= 0) ::close(ruleset_fd_);
  for (const int fd : procs_fds_) ::close(fd);
}

Result<Confinement> Confinement::prepare(const ConfineOptions& options,
                                         const ConfineRequest& request) {
  const auto unsafe = [](Error e) {
    return std::move(e).context(
        "confining the VMM (fails closed; the operator may run unconfined VMs with "
        "--unsafe-unconfined-vms)");
  };
  Confinement c;
  if (::geteuid() != 0) {
    return unsafe(Error(errc::kFailedPrecondition,
                        "dropping the VMM to its own uid needs the agent to run as root"));
  }
  c.abi_ = landlockAbi();
  if (c.abi_ <= 0) {
    return unsafe(Error(errc::kFailedPrecondition,
                        "Landlock is not available in this kernel (Linux >= 5.13 with "
                        "landlock in the lsm= list)"));
  }
  PLFM_ASSIGN_OR_RETURN(c.uid_, allocateUid(options, request.instance_id));

  VmmLimits limits;
  limits.vcpus = request.vcpus;
  limits.memory_max_bytes =
      (static_cast<uint64_t>(std::max(request.memory_mb, 0)) + options.memory_overhead_mb) << 20;
  limits.pids_max = options.pids_max;
  auto procs = prepareVmmGroups(request.instance_id, limits, options.cgroups);
  if (!procs) return unsafe(procs.error());
  for (const auto& p : *procs) {
    const int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return unsafe(errnoError("opening " + p, errno));
    c.procs_fds_.push_back(fd);
  }

  auto rs = createRuleset(c.abi_);
  if (!rs) return unsafe(rs.error());
  c.ruleset_fd_ = *rs;
  // The dynamic loader and QEMU's own data live under /usr (merged /usr:
  // /lib and /lib64 resolve into it).
  auto add = [&](const std::string& path, uint64_t access) -> Result<void> {
    auto r = addRule(c.ruleset_fd_, c.abi_, path, access);
    if (!r) return unsafe(r.error());
    return ok();
  };
  PLFM_TRY(add("/usr", kFsExecute | kFsReadFile | kFsReadDir));
  if (fs::exists("/etc/ld.so.cache")) PLFM_TRY(add("/etc/ld.so.cache", kFsReadFile));
  PLFM_TRY(add("/dev/null", kFsReadFile | kFsWriteFile));
  if (!request.devices.empty()) {
    auto nodes = makeDeviceNodes(request, c.uid_);
    if (!nodes) return unsafe(nodes.error());
    for (const auto& [node, path] : *nodes) PLFM_TRY(add(node, kFsReadFile | kFsWriteFile));
    c.device_binds_ = std::move(*nodes);
  }
  for (const auto& f : request.files) {
    switch (f.access) {
      case FileGrant::kRead:
        PLFM_TRY(add(f.path, kFsReadFile));
        break;
      case FileGrant::kReadWrite:
        PLFM_TRY(add(f.path, kFsReadFile | kFsWriteFile | kFsTruncate));
        break;
      case FileGrant::kExecute:
        PLFM_TRY(add(f.path, kFsReadFile | kFsExecute));
        break;
      case FileGrant::kSocketDir:
        PLFM_TRY(add(f.path, kFsMakeSock | kFsRemoveFile));
        break;
    }
  }
  return c;
}

int Confinement::enter(const char** stage) const noexcept {
  for (const int fd : procs_fds_) {
    *stage = "joining the VMM's cgroups";
    if (::write(fd, "0", 1) != 1) return errno;
  }
  if (!device_binds_.empty()) {
    *stage = "entering a private mount namespace";
    if (::unshare(CLONE_NEWNS) != 0) return errno;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;
    *stage = "binding the VMM's own device nodes";
    for (const auto& [node, path] : device_binds_) {
      if (::mount(node.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0) return errno;
    }
  }
  *stage = "setting no_new_privs";
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  *stage = "dropping supplementary groups";
  if (::setgroups(0, nullptr) != 0) return errno;
  *stage = "dropping to the VMM's gid";
  if (::setresgid(uid_, uid_, uid_) != 0) return errno;
  *stage = "dropping to the VMM's uid";
  if (::setresuid(uid_, uid_, uid_) != 0) return errno;
  *stage = "entering the Landlock domain";
  if (::syscall(SYS_landlock_restrict_self, ruleset_fd_, 0) != 0) return errno;
  return 0;
}

int enterConfinementHook(const void* arg, const char** stage) noexcept {
  return static_cast<const Confinement*>(arg)->enter(stage);
}

}  // namespace plfm::runtime
