#include "plan.h"

#include <sys/mount.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <map>

namespace plfm::init {

namespace gp = guest_proto;

Result<std::vector<std::string>> parseModuleOrder(std::string_view text) {
  std::vector<std::string> out;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    if (line.find('/') != std::string_view::npos || line.size() < 4 ||
        line.substr(line.size() - 3) != ".ko") {
      return fail("modules.order line " + std::to_string(line_no) + ": not a .ko file name");
    }
    out.emplace_back(line);
  }
  return out;
}

ModuleSets splitModules(const std::vector<std::string>& files) {
  ModuleSets sets;
  for (const std::string& f : files) {
    const bool vsock = f.rfind("vsock", 0) == 0 || f.rfind("vmw_vsock", 0) == 0;
    (vsock ? sets.vsock : sets.boot).push_back(f);
  }
  return sets;
}

namespace {
MountStep mountStep(std::string source, std::string target, std::string fstype,
                    unsigned long flags,  // NOLINT(google-runtime-int)
                    std::string data = {}) {
  MountStep s;
  s.source = std::move(source);
  s.target = std::move(target);
  s.fstype = std::move(fstype);
  s.flags = flags;
  s.data = std::move(data);
  return s;
}

MountStep moveStep(std::string source, std::string target) {
  MountStep s;
  s.kind = MountStep::Kind::kMove;
  s.source = std::move(source);
  s.target = std::move(target);
  s.flags = MS_MOVE;
  return s;
}
}  // namespace

std::vector<MountStep> earlyMounts() {
  constexpr auto kNoSuid = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  return {
      mountStep("proc", "/proc", "proc", kNoSuid),
      mountStep("sysfs", "/sys", "sysfs", kNoSuid),
      mountStep("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"),
      // /run holds the secrets file: tmpfs, so it never touches a disk.
      mountStep("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"),
      mountStep("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"),
  };
}

std::vector<MountStep> rootMountPlan(const gp::Config& config) {
  const std::string rootfs(kRootfsMount);
  const std::string scratch(kScratchMount);
  const std::string upper = scratch + "/upper";
  const std::string work = scratch + "/work";
  std::vector<MountStep> plan;
  plan.push_back(mountStep(config.rootfs_device, rootfs, "ext4", MS_RDONLY));
  MountStep scratch_step = mountStep(config.scratch_device, scratch, "ext4", MS_NOATIME);
  scratch_step.mkdirs = {upper, work};
  plan.push_back(std::move(scratch_step));
  plan.push_back(mountStep("overlay", std::string(kNewRoot), "overlay", 0,
                           "lowerdir=" + rootfs + ",upperdir=" + upper + ",workdir=" + work));
  for (const MountStep& early : earlyMounts()) {
    plan.push_back(moveStep(early.target, std::string(kNewRoot) + early.target));
  }
  return plan;
}

std::vector<MountStep> lateMounts() {
  return {
      mountStep("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620"),
      mountStep("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"),
  };
}

Result<std::string> volumeDevice(std::string_view serial, const std::vector<BlockDisk>& disks) {
  std::string found;
  for (const BlockDisk& d : disks) {
    std::string_view s = d.serial;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\0')) {
      s.remove_suffix(1);
    }
    if (s != serial) continue;
    if (!found.empty()) return fail("two disks have serial " + std::string(serial));
    found = "/dev/" + d.name;
  }
  if (found.empty()) return fail("no disk has serial " + std::string(serial));
  return found;
}

std::vector<std::string> pathComponents(std::string_view path) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < path.size()) {
    const size_t end = std::min(path.find('/', at), path.size());
    if (end > at) out.emplace_back(path.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

namespace {
uint32_t le32(std::string_view b, size_t at) {
  return static_cast<uint32_t>(static_cast<unsigned char>(b[at])) |
         static_cast<uint32_t>(static_cast<unsigned char>(b[at + 1])) << 8 |
         static_cast<uint32_t>(static_cast<unsigned char>(b[at + 2])) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(b[at + 3])) << 24;
}
}  // namespace

Result<Ext4Superblock> parseExt4Superblock(std::string_view b) {
  constexpr size_t kBlocksLo = 0x04;
  constexpr size_t kLogBlockSize = 0x18;
  constexpr size_t kMagic = 0x38;
  constexpr size_t kIncompat = 0x60;
  constexpr size_t kBlocksHi = 0x150;
  constexpr uint32_t kIncompat64Bit = 0x80;
  if (b.size() < 1024) return fail("short ext4 superblock");
  if ((le32(b, kMagic) & 0xffff) != 0xef53) return fail("not an ext4 filesystem");
  const uint32_t log = le32(b, kLogBlockSize);
  if (log > 6) return fail("bad ext4 block size");
  Ext4Superblock sb;
  sb.block_size = uint64_t{1024} << log;
  sb.blocks = le32(b, kBlocksLo);
  if ((le32(b, kIncompat) & kIncompat64Bit) != 0) sb.blocks |= uint64_t{le32(b, kBlocksHi)} << 32;
  return sb;
}

uint64_t ext4GrowTarget(const Ext4Superblock& sb, uint64_t device_bytes) {
  if (sb.block_size == 0) return 0;
  const uint64_t fits = device_bytes / sb.block_size;
  return fits > sb.blocks ? fits : 0;
}

bool chownFreshVolumeRoot(uint32_t owner_uid, uint32_t owner_gid,
                          const std::vector<std::string>& entries, uint32_t uid, uint32_t gid) {
  if (owner_uid != 0 || owner_gid != 0 || (uid == 0 && gid == 0)) return false;
  return std::all_of(entries.begin(), entries.end(), [](const std::string& e) {
    return e == "." || e == ".." || e == "lost+found";
  });
}

std::vector<std::string> workloadEnv(const gp::Config& config, const secrets::SecretMap* secrets) {
  // Keyed by name, keeping CONFIG's order for the names it has.
  std::vector<std::string> out;
  std::map<std::string, size_t> index;
  auto set = [&](std::string_view key, std::string_view value) {
    std::string entry(key);
    entry += '=';
    entry += value;
    auto it = index.find(std::string(key));
    if (it != index.end()) {
      out[it->second] = std::move(entry);
    } else {
      index.emplace(std::string(key), out.size());
      out.push_back(std::move(entry));
    }
  };
  for (const std::string& e : config.env) {
    const size_t eq = e.find('=');
    set(std::string_view(e).substr(0, eq), std::string_view(e).substr(eq + 1));
  }
  if (secrets != nullptr && config.secrets_as_env) {
    for (const auto& [key, value] : *secrets) {
      if (value.find('\0') == std::string::npos) set(key, value);
    }
  }
  if (index.count("PATH") == 0) set("PATH", kDefaultPath);
  if (index.count("HOSTNAME") == 0 && !config.hostname.empty()) set("HOSTNAME", config.hostname);
  return out;
}

std::string pathOf(const std::vector<std::string>& env) {
  for (const std::string& e : env) {
    if (e.rfind("PATH=", 0) == 0) return e.substr(5);
  }
  return std::string(kDefaultPath);
}

Result<std::string> resolveProgram(std::string_view program, std::string_view path,
                                   const std::function<bool(const std::string&)>& executable) {
  if (program.empty()) return fail("empty program name");
  if (program.find('/') != std::string_view::npos) return std::string(program);
  while (true) {
    const size_t colon = path.find(':');
    std::string dir(path.substr(0, colon));
    if (dir.empty()) dir = ".";  // POSIX: an empty PATH entry is the cwd
    std::string candidate = dir + "/" + std::string(program);
    if (executable(candidate)) return candidate;
    if (colon == std::string_view::npos) break;
    path.remove_prefix(colon + 1);
  }
  return fail(std::string(program) + ": not found in PATH");
}

std::string hostsFile(const gp::Config& config) {
  std::string out =
      "127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\n";
  if (!config.hostname.empty()) {
    if (config.network) {
      out += gp::formatIpv6(config.network->ipv6_address) + "\t" + config.hostname + "\n";
      if (config.network->ipv4) {
        out += gp::formatIpv4(config.network->ipv4->address) + "\t" + config.hostname + "\n";
      }
    } else {
      out += "127.0.1.1\t" + config.hostname + "\n";
    }
  }
  return out;
}

std::string resolvConf(const gp::Config& config) {
  std::string out;
  for (const std::string& ns : config.nameservers) out += "nameserver " + ns + "\n";
  return out;
}

gp::Exit exitFromWaitStatus(int status) {
  if (WIFSIGNALED(status)) return gp::Exit{gp::ExitKind::kSignaled, WTERMSIG(status)};
  return gp::Exit{gp::ExitKind::kExited, WEXITSTATUS(status)};
}

int execFailureCode(int err) { return err == ENOENT || err == ENOTDIR ? 127 : 126; }

}  // namespace plfm::init
