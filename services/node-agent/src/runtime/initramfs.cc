#include "runtime/initramfs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "plfm/core/process.h"
#include "plfm/core/sha256.h"

namespace plfm::runtime {

namespace {

constexpr std::string_view kMagic = "070701";
constexpr std::string_view kTrailer = "TRAILER!!!";
constexpr size_t kHeaderBytes = 110;  // magic + 13 fields of 8 hex digits

void appendHex(std::string& out, uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  out.append(buf, 8);
}

void pad4(std::string& out) {
  while (out.size() % 4 != 0) out.push_back('\0');
}

void appendEntry(std::string& out, const CpioEntry& e, uint32_t ino) {
  out.append(kMagic);
  const bool dir = S_ISDIR(e.mode);
  const uint32_t fields[13] = {
      ino,
      e.mode,
      0,              // uid
      0,              // gid
      dir ? 2u : 1u,  // nlink
      0,              // mtime: fixed so the archive is reproducible
      static_cast<uint32_t>(e.data.size()),
      0,  // devmajor
      0,  // devminor
      e.rdev_major,
      e.rdev_minor,
      static_cast<uint32_t>(e.path.size() + 1),
      0,  // check (unused by newc)
  };
  for (uint32_t f : fields) appendHex(out, f);
  out.append(e.path);
  out.push_back('\0');
  pad4(out);
  out.append(e.data);
  pad4(out);
}

Result<uint32_t> parseHex(std::string_view s) {
  uint32_t v = 0;
  for (char c : s) {
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (d < 0) return Error(errc::kInvalidArgument, "cpio: bad hex field");
    v = (v << 4) | static_cast<uint32_t>(d);
  }
  return v;
}

size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

}  // namespace

std::string writeNewc(const std::vector<CpioEntry>& entries) {
  size_t total = 512;
  for (const CpioEntry& e : entries) total += kHeaderBytes + e.path.size() + e.data.size() + 8;
  std::string out;
  out.reserve(total);
  uint32_t ino = 1;
  for (const CpioEntry& e : entries) appendEntry(out, e, ino++);
  appendEntry(out, CpioEntry{std::string(kTrailer), 0, {}, 0, 0}, 0);
  // The kernel reads archives in 512-byte blocks, as cpio(1) pads them.
  while (out.size() % 512 != 0) out.push_back('\0');
  return out;
}

Result<std::vector<CpioEntry>> readNewc(std::string_view archive) {
  std::vector<CpioEntry> entries;
  size_t at = 0;
  while (true) {
    if (archive.size() - at < kHeaderBytes) {
      return Error(errc::kInvalidArgument, "cpio: truncated header (no TRAILER!!!)");
    }
    if (archive.substr(at, 6) != kMagic) {
      return Error(errc::kInvalidArgument, "cpio: bad magic at offset " + std::to_string(at));
    }
    uint32_t f[13];
    for (size_t i = 0; i < 13; ++i) {
      PLFM_ASSIGN_OR_RETURN(f[i], parseHex(archive.substr(at + 6 + i * 8, 8)));
    }
    const size_t name_len = f[11];
    const size_t file_size = f[6];
    const size_t name_at = at + kHeaderBytes;
    if (name_len == 0 || archive.size() < name_at + name_len) {
      return Error(errc::kInvalidArgument, "cpio: truncated name");
    }
    const std::string name(archive.substr(name_at, name_len - 1));
    const size_t data_at = align4(name_at + name_len);
    if (archive.size() < data_at + file_size) {
      return Error(errc::kInvalidArgument, "cpio: truncated data of " + name);
    }
    if (name == kTrailer) return entries;
    entries.push_back(
        CpioEntry{name, f[1], std::string(archive.substr(data_at, file_size)), f[9], f[10]});
    at = align4(data_at + file_size);
  }
}

Result<std::vector<CpioEntry>> initramfsEntries(const InitramfsInputs& inputs) {
  std::vector<CpioEntry> entries;
  auto dir = [&](std::string path) {
    entries.push_back(CpioEntry{std::move(path), S_IFDIR | 0755, {}, 0, 0});
  };
  for (const char* d :
       {"dev", "proc", "sys", "run", "tmp", "mnt", "newroot", "lib", "lib/modules"}) {
    dir(d);
  }
  // The kernel opens /dev/console for PID 1's stdio before devtmpfs exists.
  entries.push_back(CpioEntry{"dev/console", S_IFCHR | 0600, {}, 5, 1});
  auto init = readFile(inputs.init_binary);
  if (!init) return std::move(init).error();
  if (!std::string_view(*init).starts_with("\x7f"
                                           "ELF")) {
    return Error(errc::kInvalidArgument, "init binary is not an ELF file")
        .with("path", inputs.init_binary);
  }
  entries.push_back(CpioEntry{"init", S_IFREG | 0755, std::move(*init), 0, 0});
  if (inputs.modules_dir.empty()) return entries;

  const std::string order_path = inputs.modules_order.empty()
                                     ? inputs.modules_dir + "/../modules.order"
                                     : inputs.modules_order;
  PLFM_ASSIGN_OR_RETURN(std::string order, readFile(order_path));
  size_t start = 0;
  while (start < order.size()) {
    size_t nl = order.find('\n', start);
    if (nl == std::string::npos) nl = order.size();
    const std::string name = order.substr(start, nl - start);
    start = nl + 1;
    if (name.empty() || name[0] == '#') continue;
    if (name.find('/') != std::string::npos || name.size() < 4 ||
        name.compare(name.size() - 3, 3, ".ko") != 0) {
      return Error(errc::kInvalidArgument, "modules.order: not a .ko file name").with("line", name);
    }
    PLFM_ASSIGN_OR_RETURN(std::string ko, readFile(inputs.modules_dir + "/" + name));
    entries.push_back(CpioEntry{"lib/modules/" + name, S_IFREG | 0644, std::move(ko), 0, 0});
  }
  entries.push_back(CpioEntry{"lib/modules/modules.order", S_IFREG | 0644, std::move(order), 0, 0});
  return entries;
}

Result<std::string> buildInitramfs(const InitramfsInputs& inputs, const std::string& cache_dir) {
  PLFM_ASSIGN_OR_RETURN(auto entries, initramfsEntries(inputs));
  const std::string archive = writeNewc(entries);
  const std::string path = cache_dir + "/initramfs-" + Sha256::hex(archive) + ".cpio";
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && static_cast<size_t>(st.st_size) == archive.size()) {
    return path;
  }
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  if (ec) return Error(errc::kIo, "create " + cache_dir + ": " + ec.message());
  PLFM_TRY(writeFileAtomic(path, archive, 0644));
  return path;
}

}  // namespace plfm::runtime
