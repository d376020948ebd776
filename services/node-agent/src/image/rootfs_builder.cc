#include "image/rootfs_builder.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <set>
#include <utility>
#include <vector>

#include "image/fs_util.h"
#include "image/path_safety.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::image {

namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kInodeSize = 256;
constexpr uint64_t kFastSymlinkMax = 59;  // shorter targets live in the inode

uint64_t roundUp(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

std::string fmtOctal(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%o", v);
  return buf;
}

struct Usage {
  uint64_t bytes = 0;
  uint64_t inodes = 0;
};

// Walks the tree the way mkfs will store it: file data in 4 KiB blocks,
// hardlinked files once, one inode per object, directory blocks from their
// entries' names.
void measure(const std::string& dir, Usage& u, std::set<std::pair<dev_t, ino_t>>& seen) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  uint64_t dirent_bytes = 24;  // "." and ".."
  std::vector<std::string> subdirs;
  while (dirent* de = ::readdir(d)) {
    const std::string_view n = de->d_name;
    if (n == "." || n == "..") continue;
    dirent_bytes += roundUp(8 + n.size(), 4);
    const std::string p = dir + "/" + std::string(n);
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      subdirs.push_back(p);
      continue;
    }
    if (st.st_nlink > 1 && !seen.emplace(st.st_dev, st.st_ino).second) continue;
    ++u.inodes;
    if (S_ISREG(st.st_mode)) {
      // Allocated blocks, so sparse files stay sparse in the estimate.
      const auto alloc = static_cast<uint64_t>(st.st_blocks) * 512;
      u.bytes += roundUp(
          std::min<uint64_t>(alloc, roundUp(static_cast<uint64_t>(st.st_size), kBlock)), kBlock);
    } else if (S_ISLNK(st.st_mode) && static_cast<uint64_t>(st.st_size) > kFastSymlinkMax) {
      u.bytes += kBlock;
    }
  }
  ::closedir(d);
  ++u.inodes;
  u.bytes += roundUp(dirent_bytes, kBlock);
  for (const auto& s : subdirs) measure(s, u, seen);
}

// debugfs arguments are split on spaces unless quoted; a quote inside a name
// cannot be expressed, so such names are skipped (with a log line).
bool quotable(std::string_view p) {
  return p.find('"') == std::string_view::npos && p.find('\n') == std::string_view::npos;
}

std::string q(std::string_view p) { return "\"" + std::string(p) + "\""; }

Result<std::string> debugfsScript(const std::map<std::string, InodeFixup>& fixups,
                                  const std::string& scratch, uint64_t& count) {
  std::string s;
  int xattr_files = 0;
  for (const auto& [rel, f] : fixups) {
    if (!quotable(rel)) {
      log::warn("skipping ext4 fixup for a path debugfs cannot quote", {{"path", rel}});
      continue;
    }
    ++count;
    const std::string abs = "/" + rel;
    if (f.device != 0) {
      s += "cd " + q("/" + std::string(parentOf(rel))) + "\n";
      s += "mknod " + q(baseOf(rel)) + " " + f.device + " " + std::to_string(f.major) + " " +
           std::to_string(f.minor) + "\n";
      s += "cd /\n";
    }
    if (f.mode) s += "sif " + q(abs) + " mode 0" + fmtOctal(*f.mode) + "\n";
    if (f.uid) s += "sif " + q(abs) + " uid " + std::to_string(*f.uid) + "\n";
    if (f.gid) s += "sif " + q(abs) + " gid " + std::to_string(*f.gid) + "\n";
    for (const auto& [name, value] : f.xattrs) {
      const std::string vf = scratch + "/xattr." + std::to_string(xattr_files++);
      PLFM_TRY(writeFileAtomic(vf, value));
      s += "ea_set -f " + q(vf) + " " + q(abs) + " " + q(name) + "\n";
    }
  }
  return s;
}

}  // namespace

Result<RootfsStats> buildExt4(const std::string& staging,
                              const std::map<std::string, InodeFixup>& fixups,
                              const std::string& out, const std::string& scratch,
                              const RootfsOptions& options) {
  Usage u;
  std::set<std::pair<dev_t, ino_t>> seen;
  measure(staging, u, seen);
  u.inodes += fixups.size();
  RootfsStats stats;
  stats.inodes = u.inodes;
  // Metadata beyond data blocks: the inode table, extent blocks, bitmaps and
  // group descriptors (a few percent), and the reserved inodes.
  const uint64_t inodes = u.inodes + u.inodes / 10 + 1024;
  stats.content_bytes = u.bytes + u.bytes / 32 + inodes * kInodeSize + (uint64_t{8} << 20);
  uint64_t size =
      stats.content_bytes +
      std::max(stats.content_bytes * options.headroom_percent / 100, options.min_headroom_bytes);
  size = roundUp(size, uint64_t{1} << 20);

  const std::string log_path = scratch + "/mkfs.log";
  for (int attempt = 0;; ++attempt) {
    ::unlink(out.c_str());
    std::vector<std::string> argv = {options.mkfs,
                                     "-q",
                                     "-F",
                                     "-t",
                                     "ext4",
                                     "-b",
                                     "4096",
                                     "-I",
                                     "256",
                                     "-m",
                                     "0",
                                     "-N",
                                     std::to_string(inodes),
                                     "-O",
                                     "^has_journal",
                                     "-E",
                                     "root_owner=0:0,lazy_itable_init=0,nodiscard",
                                     "-L",
                                     "rootfs",
                                     "-d",
                                     staging};
    if (!options.uuid.empty()) {
      argv.emplace_back("-U");
      argv.push_back(options.uuid);
    }
    argv.push_back(out);
    argv.push_back(std::to_string(size / 1024) + "k");
    SpawnOptions so;
    so.stdout_path = log_path;
    ::unlink(log_path.c_str());
    auto r = runChecked(argv, so);
    if (r) break;
    const std::string tail = tailFile(log_path, 20);
    const bool no_space = tail.find("Could not allocate") != std::string::npos ||
                          tail.find("No space left") != std::string::npos ||
                          tail.find("ENOSPC") != std::string::npos;
    if (!no_space || attempt >= 2) {
      ::unlink(out.c_str());
      return r.error().context("building the ext4 rootfs");
    }
    log::warn("rootfs estimate too small; retrying larger", {{"bytes", size}});
    size = roundUp(size + size / 2, uint64_t{1} << 20);
  }
  stats.image_bytes = size;

  if (!fixups.empty()) {
    PLFM_ASSIGN_OR_RETURN(std::string script, debugfsScript(fixups, scratch, stats.fixups));
    const std::string script_path = scratch + "/fixups.debugfs";
    PLFM_TRY(writeFileAtomic(script_path, script));
    SpawnOptions so;
    so.stdout_path = scratch + "/debugfs.log";
    PLFM_TRY(runChecked({options.debugfs, "-w", "-f", script_path, out}, so).map_error([](Error e) {
      return std::move(e).context("applying ext4 fixups");
    }));
    // debugfs reports a failed command on its output but still exits 0. It
    // echoes each command ("debugfs: ...") and notes allocations; any other
    // line is a failure.
    const std::string dlog = readFile(so.stdout_path).value_or("");
    std::string failures;
    for (auto line : splitLines(dlog)) {
      if (line.empty() || startsWith(line, "debugfs ") || startsWith(line, "debugfs:") ||
          startsWith(line, "Allocated inode")) {
        continue;
      }
      failures += std::string(line) + "\n";
    }
    if (!failures.empty()) {
      ::unlink(out.c_str());
      return Error(errc::kInternal, "applying ext4 fixups with debugfs failed:\n" + failures);
    }
  }
  return stats;
}

}  // namespace plfm::image
