#include "tree_inspect.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::image::testing {

namespace {

std::string typeName(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return "dir";
    case S_IFREG:
      return "file";
    case S_IFLNK:
      return "symlink";
    case S_IFCHR:
      return "chardev";
    case S_IFBLK:
      return "blockdev";
    case S_IFIFO:
      return "fifo";
    default:
      return "other";
  }
}

std::string describe(uint32_t mode, uint32_t uid, uint32_t gid, uint64_t size,
                     const std::string& extra) {
  char perm[8];
  std::snprintf(perm, sizeof(perm), "%04o", mode & 07777);
  std::string s =
      typeName(mode) + " " + perm + " " + std::to_string(uid) + ":" + std::to_string(gid);
  if ((mode & S_IFMT) == S_IFREG) s += " " + std::to_string(size);
  if (!extra.empty()) s += " " + extra;
  return s;
}

// An xattr value as text when every byte is printable, else as hex bytes.
std::string renderValue(std::string_view v) {
  bool printable = true;
  for (char c : v) printable = printable && c >= 0x20 && c < 0x7f;
  if (printable) return "\"" + std::string(v) + "\"";
  std::string out;
  for (unsigned char c : v) {
    char b[4];
    std::snprintf(b, sizeof(b), "%02x", c);
    if (!out.empty()) out += ' ';
    out += b;
  }
  return out;
}

// " xattr NAME=VALUE" per attribute, sorted by name.
std::string renderXattrs(const std::map<std::string, std::string>& xattrs) {
  std::string out;
  for (const auto& [name, value] : xattrs) out += " xattr " + name + "=" + renderValue(value);
  return out;
}

Result<std::map<std::string, std::string>> hostXattrs(const std::string& path) {
  std::map<std::string, std::string> out;
  std::string names(64 << 10, '\0');
  const ssize_t n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) {
    if (errno == ENOTSUP) return out;
    return errnoError("llistxattr " + path, errno);
  }
  for (size_t at = 0; at < static_cast<size_t>(n);) {
    const std::string name(names.c_str() + at);
    at += name.size() + 1;
    std::string value(64 << 10, '\0');
    const ssize_t len = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (len < 0) {
      std::string what = "lgetxattr " + path;
      what += ": ";
      what += name;
      return errnoError(what, errno);
    }
    value.resize(static_cast<size_t>(len));
    out[name] = std::move(value);
  }
  return out;
}

// A value as `debugfs ea_list` prints it: "text" (with \ooo escapes for
// the odd unprintable byte) or hex bytes "01 00 ...".
std::string parseDebugfsValue(std::string_view v) {
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  std::string out;
  if (!v.empty() && v.front() == '"') {
    v.remove_prefix(1);
    if (!v.empty() && v.back() == '"') v.remove_suffix(1);
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '\\' && i + 3 < v.size()) {
        out += static_cast<char>(std::stoi(std::string(v.substr(i + 1, 3)), nullptr, 8));
        i += 3;
      } else {
        out += v[i];
      }
    }
    return out;
  }
  for (size_t i = 0; i + 2 <= v.size(); i += 3) {
    out += static_cast<char>(std::stoi(std::string(v.substr(i, 2)), nullptr, 16));
  }
  return out;
}

// Hardlink groups: every member gets " link=<first path>".
void addLinkGroups(TreeListing& out, const std::map<uint64_t, std::vector<std::string>>& inodes) {
  for (const auto& [ino, paths] : inodes) {
    if (paths.size() < 2) continue;
    for (const auto& p : paths) out[p] += " link=" + paths.front();
  }
}

Result<std::string> debugfs(const std::string& image, const std::string& script,
                            const std::string& scratch) {
  const std::string sp = scratch + "/inspect.debugfs";
  const std::string out = scratch + "/inspect.out";
  PLFM_TRY(writeFileAtomic(sp, script));
  ::unlink(out.c_str());
  SpawnOptions so;
  so.stdout_path = out;
  so.stderr_path = scratch + "/inspect.err";
  PLFM_TRY(runChecked({"debugfs", "-f", sp, image}, so));
  return readFile(out);
}

// Appends every object's xattrs, read with `debugfs ea_list`.
Result<void> addExt4Xattrs(const std::string& image, const std::string& scratch, TreeListing& out) {
  std::vector<std::string> paths;
  std::string script;
  for (const auto& [p, d] : out) {
    paths.push_back(p);
    script += "ea_list \"" + p + "\"\n";
  }
  if (paths.empty()) return ok();
  PLFM_ASSIGN_OR_RETURN(std::string text, debugfs(image, script, scratch));
  std::map<std::string, std::map<std::string, std::string>> found;
  size_t which = 0;
  std::string cur;
  for (auto line : splitLines(text)) {
    if (startsWith(line, "debugfs: ea_list")) {
      cur = paths[which++];
      continue;
    }
    // "  NAME (LEN) = VALUE"
    if (!startsWith(line, "  ")) continue;
    const size_t paren = line.find(" (");
    const size_t eq = line.find(") = ");
    if (paren == std::string_view::npos || eq == std::string_view::npos) continue;
    const std::string name(line.substr(2, paren - 2));
    found[cur][name] = parseDebugfsValue(line.substr(eq + 4));
  }
  for (const auto& [p, xattrs] : found) out[p] += renderXattrs(xattrs);
  return ok();
}

}  // namespace

Result<TreeListing> listHostTree(const std::string& root) {
  TreeListing out;
  std::map<uint64_t, std::vector<std::string>> inodes;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string p = it->path().string().substr(root.size());
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) return errnoError("lstat " + p, errno);
    std::string extra;
    if (S_ISLNK(st.st_mode)) {
      std::error_code e2;
      extra = "-> " + std::filesystem::read_symlink(it->path(), e2).string();
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      extra = std::to_string(major(st.st_rdev)) + "," + std::to_string(minor(st.st_rdev));
    }
    if (S_ISREG(st.st_mode)) inodes[st.st_ino].push_back(p);
    PLFM_ASSIGN_OR_RETURN(auto xattrs, hostXattrs(it->path().string()));
    out[p] = describe(st.st_mode, st.st_uid, st.st_gid, static_cast<uint64_t>(st.st_size), extra) +
             renderXattrs(xattrs);
  }
  if (ec) return Error(errc::kIo, "walk " + root + ": " + ec.message());
  for (auto& [ino, paths] : inodes) std::sort(paths.begin(), paths.end());
  addLinkGroups(out, inodes);
  return out;
}

Result<TreeListing> listExt4(const std::string& image, const std::string& scratch) {
  TreeListing out;
  std::map<uint64_t, std::vector<std::string>> inodes;
  std::vector<std::string> level = {""};
  std::vector<std::string> specials;  // symlinks and devices: need `stat`
  while (!level.empty()) {
    std::string script;
    for (const auto& d : level) script += "ls -p \"" + (d.empty() ? "/" : d) + "\"\n";
    PLFM_ASSIGN_OR_RETURN(std::string text, debugfs(image, script, scratch));
    std::vector<std::string> next;
    size_t which = 0;
    std::string cur;
    for (auto line : splitLines(text)) {
      if (startsWith(line, "debugfs: ls")) {
        cur = level[which++];
        continue;
      }
      // /inode/mode/uid/gid/name/size/
      if (!startsWith(line, "/")) continue;
      std::vector<std::string> f;
      size_t start = 1;
      while (start < line.size()) {
        const size_t slash = line.find('/', start);
        if (slash == std::string_view::npos) break;
        f.emplace_back(line.substr(start, slash - start));
        start = slash + 1;
      }
      if (f.size() < 5) continue;
      const std::string& name = f[4];
      if (name == "." || name == ".." || (cur.empty() && name == "lost+found")) continue;
      const auto mode = static_cast<uint32_t>(std::stoul(f[1], nullptr, 8));
      std::string path = cur;
      path += '/';
      path += name;
      const uint64_t size = f.size() > 5 && !f[5].empty() ? std::stoull(f[5]) : 0;
      out[path] = describe(mode, static_cast<uint32_t>(std::stoul(f[2])),
                           static_cast<uint32_t>(std::stoul(f[3])), size, "");
      if (S_ISDIR(mode)) next.push_back(path);
      if (S_ISLNK(mode) || S_ISCHR(mode) || S_ISBLK(mode)) specials.push_back(path);
      if (S_ISREG(mode)) inodes[std::stoull(f[0])].push_back(path);
    }
    level = std::move(next);
  }
  if (!specials.empty()) {
    std::string script;
    for (const auto& p : specials) script += "stat \"" + p + "\"\n";
    PLFM_ASSIGN_OR_RETURN(std::string text, debugfs(image, script, scratch));
    size_t which = 0;
    std::string cur;
    for (auto line : splitLines(text)) {
      if (startsWith(line, "debugfs: stat")) {
        cur = specials[which++];
        continue;
      }
      const std::string_view kLink = "Fast link dest: \"";
      if (auto pos = line.find(kLink); pos != std::string_view::npos) {
        auto target = line.substr(pos + kLink.size());
        target = target.substr(0, target.rfind('"'));
        out[cur] += " -> " + std::string(target);
      }
      const std::string_view kDev = "Device major/minor number: ";
      if (auto pos = line.find(kDev); pos != std::string_view::npos) {
        auto v = line.substr(pos + kDev.size());
        const size_t colon = v.find(':');
        const size_t sp = v.find(' ');
        out[cur] += " " + std::to_string(std::stoul(std::string(v.substr(0, colon)))) + "," +
                    std::to_string(std::stoul(std::string(v.substr(colon + 1, sp - colon - 1))));
      }
    }
  }
  // Longer symlink targets (over 59 bytes) live in a data block, which
  // `stat` does not show: dump each one.
  std::vector<std::string> slow;
  for (const auto& p : specials) {
    if (startsWith(out[p], "symlink") && out[p].find(" -> ") == std::string::npos) {
      slow.push_back(p);
    }
  }
  if (!slow.empty()) {
    std::string script;
    for (size_t i = 0; i < slow.size(); ++i) {
      const std::string dest = scratch + "/link." + std::to_string(i);
      ::unlink(dest.c_str());  // a stale one must not pass for this image's
      script += "dump \"" + slow[i] + "\" \"" + dest + "\"\n";
    }
    PLFM_TRY(debugfs(image, script, scratch));
    for (size_t i = 0; i < slow.size(); ++i) {
      PLFM_ASSIGN_OR_RETURN(std::string target, readFile(scratch + "/link." + std::to_string(i)));
      out[slow[i]] += " -> " + target;
    }
  }
  PLFM_TRY(addExt4Xattrs(image, scratch, out));
  for (auto& [ino, paths] : inodes) std::sort(paths.begin(), paths.end());
  addLinkGroups(out, inodes);
  return out;
}

Result<std::string> catExt4(const std::string& image, const std::string& path,
                            const std::string& scratch) {
  const std::string out = scratch + "/cat.out";
  ::unlink(out.c_str());
  SpawnOptions so;
  so.stdout_path = scratch + "/cat.log";
  PLFM_TRY(runChecked({"debugfs", "-R", "dump \"" + path + "\" " + out, image}, so));
  return readFile(out);
}

}  // namespace plfm::image::testing
