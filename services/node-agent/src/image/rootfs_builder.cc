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

#include "image/ext4_fixups.h"
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

  auto applied = applyExt4Fixups(out, fixups);
  if (!applied) {
    ::unlink(out.c_str());
    return applied.error().context("applying ext4 fixups");
  }
  stats.fixups = *applied;
  return stats;
}

}  // namespace plfm::image
