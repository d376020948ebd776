#include "test_image.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "plfm/core/json.h"
#include "plfm/core/process.h"
#include "plfm/core/sha256.h"

namespace plfm::image::testing {

namespace {

struct WriteDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
using WritePtr = std::unique_ptr<archive, WriteDeleter>;
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

Error archiveError(archive* a, const std::string& what) {
  const char* msg = archive_error_string(a);
  return Error(errc::kIo, what + ": " + (msg != nullptr ? msg : "libarchive error"));
}

Result<WritePtr> openWriter(const std::string& path, Compression c) {
  WritePtr a(archive_write_new());
  archive_write_set_format_pax_restricted(a.get());
  if (c == Compression::kGzip) {
    archive_write_add_filter_gzip(a.get());
    archive_write_set_filter_option(a.get(), "gzip", "compression-level", "1");
  } else if (c == Compression::kZstd) {
    archive_write_add_filter_zstd(a.get());
  }
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open_filename(a.get(), path.c_str()) != ARCHIVE_OK) {
    return archiveError(a.get(), "open " + path);
  }
  return a;
}

std::string digestOfFile(const std::string& path, uint64_t* size) {
  Sha256 h;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  std::vector<char> buf(1 << 20);
  uint64_t total = 0;
  ssize_t n = 0;
  while (fd >= 0 && (n = ::read(fd, buf.data(), buf.size())) > 0) {
    h.update(buf.data(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  if (fd >= 0) ::close(fd);
  if (size != nullptr) *size = total;
  return h.hexDigest();
}

// sha256 of the decompressed stream: the diff_id.
Result<std::string> diffIdOf(const std::string& path) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_raw(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 20) != ARCHIVE_OK) {
    return Error(errc::kIo, "open " + path);
  }
  archive_entry* e = nullptr;
  if (archive_read_next_header(a.get(), &e) != ARCHIVE_OK) return Error(errc::kIo, "read " + path);
  Sha256 h;
  std::vector<char> buf(1 << 20);
  la_ssize_t n = 0;
  while ((n = archive_read_data(a.get(), buf.data(), buf.size())) > 0) {
    h.update(buf.data(), static_cast<size_t>(n));
  }
  if (n < 0) return Error(errc::kIo, "decompress " + path);
  return h.hexDigest();
}

Result<std::string> putBlob(const std::string& layout, std::string_view bytes) {
  const std::string hex = Sha256::hex(bytes);
  PLFM_TRY(writeFileAtomic(layout + "/blobs/sha256/" + hex, bytes));
  return hex;
}

std::string layerMediaType(Compression c, bool docker) {
  if (docker) return "application/vnd.docker.image.rootfs.diff.tar.gzip";
  switch (c) {
    case Compression::kGzip:
      return "application/vnd.oci.image.layer.v1.tar+gzip";
    case Compression::kZstd:
      return "application/vnd.oci.image.layer.v1.tar+zstd";
    case Compression::kNone:
      break;
  }
  return "application/vnd.oci.image.layer.v1.tar";
}

}  // namespace

TarEntry file(std::string path, std::string content, uint32_t mode) {
  TarEntry e;
  e.path = std::move(path);
  e.content = std::move(content);
  e.mode = mode;
  return e;
}
TarEntry dir(std::string path, uint32_t mode) {
  TarEntry e;
  e.type = TarEntry::Type::kDir;
  e.path = std::move(path);
  e.mode = mode;
  return e;
}
TarEntry symlink(std::string path, std::string target) {
  TarEntry e;
  e.type = TarEntry::Type::kSymlink;
  e.path = std::move(path);
  e.target = std::move(target);
  e.mode = 0777;
  return e;
}
TarEntry hardlink(std::string path, std::string target) {
  TarEntry e;
  e.type = TarEntry::Type::kHardlink;
  e.path = std::move(path);
  e.target = std::move(target);
  return e;
}
TarEntry whiteout(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return file(parent + ".wh." + base, "", 0644);
}
TarEntry opaque(const std::string& dir_path) { return file(dir_path + "/.wh..wh..opq", "", 0644); }

Result<void> writeLayer(const std::string& path, const std::vector<TarEntry>& entries,
                        Compression compression) {
  PLFM_ASSIGN_OR_RETURN(WritePtr a, openWriter(path, compression));
  std::vector<char> zeros(1 << 20, 0);
  for (const auto& t : entries) {
    std::unique_ptr<archive_entry, EntryDeleter> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), t.path.c_str());
    archive_entry_set_uid(e.get(), t.uid);
    archive_entry_set_gid(e.get(), t.gid);
    archive_entry_set_mtime(e.get(), t.mtime, 0);
    archive_entry_set_perm(e.get(), t.mode);
    for (const auto& [k, v] : t.xattrs) {
      archive_entry_xattr_add_entry(e.get(), k.c_str(), v.data(), v.size());
    }
    uint64_t size = 0;
    switch (t.type) {
      case TarEntry::Type::kFile:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        size = t.zero_bytes > 0 ? t.zero_bytes : t.content.size();
        break;
      case TarEntry::Type::kDir:
        archive_entry_set_filetype(e.get(), AE_IFDIR);
        break;
      case TarEntry::Type::kSymlink:
        archive_entry_set_filetype(e.get(), AE_IFLNK);
        archive_entry_set_symlink(e.get(), t.target.c_str());
        break;
      case TarEntry::Type::kHardlink:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_hardlink(e.get(), t.target.c_str());
        break;
      case TarEntry::Type::kCharDev:
      case TarEntry::Type::kBlockDev:
        archive_entry_set_filetype(e.get(),
                                   t.type == TarEntry::Type::kCharDev ? AE_IFCHR : AE_IFBLK);
        archive_entry_set_rdevmajor(e.get(), t.major);
        archive_entry_set_rdevminor(e.get(), t.minor);
        break;
      case TarEntry::Type::kFifo:
        archive_entry_set_filetype(e.get(), AE_IFIFO);
        break;
    }
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK) {
      return archiveError(a.get(), "write header " + t.path);
    }
    if (t.type == TarEntry::Type::kFile) {
      if (t.zero_bytes > 0) {
        uint64_t left = t.zero_bytes;
        while (left > 0) {
          const size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
          if (archive_write_data(a.get(), zeros.data(), n) < 0) {
            return archiveError(a.get(), "write " + t.path);
          }
          left -= n;
        }
      } else if (!t.content.empty() &&
                 archive_write_data(a.get(), t.content.data(), t.content.size()) < 0) {
        return archiveError(a.get(), "write " + t.path);
      }
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) return archiveError(a.get(), "close " + path);
  return ok();
}

Result<void> writeLayerFromDir(const std::string& path, const std::string& dir,
                               const std::vector<std::string>& subpaths, Compression compression) {
  PLFM_ASSIGN_OR_RETURN(WritePtr a, openWriter(path, compression));
  std::unique_ptr<archive, decltype(&archive_read_free)> disk(archive_read_disk_new(),
                                                              archive_read_free);
  archive_read_disk_set_standard_lookup(disk.get());
  archive_read_disk_set_behavior(disk.get(), ARCHIVE_READDISK_NO_XATTR);
  std::vector<char> buf(1 << 20);
  for (const auto& sub : subpaths) {
    std::string src = dir;
    src += '/';
    src += sub;
    if (archive_read_disk_open(disk.get(), src.c_str()) != ARCHIVE_OK) {
      return archiveError(disk.get(), "open " + sub);
    }
    while (true) {
      archive_entry* e = archive_entry_new();
      const int r = archive_read_next_header2(disk.get(), e);
      if (r == ARCHIVE_EOF) {
        archive_entry_free(e);
        break;
      }
      if (r != ARCHIVE_OK) {
        archive_entry_free(e);
        return archiveError(disk.get(), "walk " + sub);
      }
      archive_read_disk_descend(disk.get());
      std::string full = archive_entry_sourcepath(e);
      archive_entry_set_pathname(e, full.substr(dir.size() + 1).c_str());
      if (archive_write_header(a.get(), e) != ARCHIVE_OK) {
        archive_entry_free(e);
        return archiveError(a.get(), "write " + full);
      }
      if (archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0 &&
          archive_entry_hardlink(e) == nullptr) {
        const int fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC);
        ssize_t n = 0;
        while (fd >= 0 && (n = ::read(fd, buf.data(), buf.size())) > 0) {
          archive_write_data(a.get(), buf.data(), static_cast<size_t>(n));
        }
        if (fd >= 0) ::close(fd);
      }
      archive_entry_free(e);
    }
    archive_read_close(disk.get());
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) return archiveError(a.get(), "close " + path);
  return ok();
}

Result<void> compressFile(const std::string& in, const std::string& out, Compression c, int level) {
  const std::string l = std::to_string(level);
  std::string tool = c == Compression::kZstd ? "zstd -q -" + l + " -c " : "gzip -" + l + " -c ";
  if (c == Compression::kNone) tool = "cat ";
  SpawnOptions so;
  so.stdout_path = out;
  so.stderr_path = out + ".err";
  ::unlink(out.c_str());
  return runChecked({"/bin/sh", "-c", tool + "'" + in + "'"}, so);
}

Result<BuiltImage> writeOciImage(const std::string& layout, const std::string& tag,
                                 const ImageSpec& spec) {
  std::filesystem::create_directories(layout + "/blobs/sha256");
  PLFM_TRY(writeFileAtomic(layout + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  using json::Json;
  Json layers = Json::array();
  Json diff_ids = Json::array();
  for (size_t i = 0; i < spec.layer_files.size(); ++i) {
    const std::string& f = spec.layer_files[i];
    uint64_t size = 0;
    const std::string hex = digestOfFile(f, &size);
    std::string dest = layout;
    dest += "/blobs/sha256/";
    dest += hex;
    std::filesystem::copy_file(f, dest, std::filesystem::copy_options::overwrite_existing);
    PLFM_ASSIGN_OR_RETURN(std::string diff, diffIdOf(f));
    const Compression c = i < spec.compressions.size() ? spec.compressions[i] : Compression::kGzip;
    layers.push_back({{"mediaType", layerMediaType(c, spec.docker_media_types)},
                      {"digest", "sha256:" + hex},
                      {"size", size}});
    diff_ids.push_back("sha256:" + diff);
  }
  Json ports = Json::object();
  for (const auto& p : spec.exposed_ports) ports[p] = Json::object();
  Json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"config",
                  {{"Entrypoint", spec.entrypoint},
                   {"Cmd", spec.cmd},
                   {"Env", spec.env},
                   {"WorkingDir", spec.workdir},
                   {"User", spec.user},
                   {"ExposedPorts", ports}}},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  const std::string config_text = json::dump(config);
  PLFM_ASSIGN_OR_RETURN(std::string config_hex, putBlob(layout, config_text));
  const std::string manifest_type = spec.docker_media_types
                                        ? "application/vnd.docker.distribution.manifest.v2+json"
                                        : "application/vnd.oci.image.manifest.v1+json";
  Json manifest = {
      {"schemaVersion", 2},
      {"mediaType", manifest_type},
      {"config",
       {{"mediaType", spec.docker_media_types ? "application/vnd.docker.container.image.v1+json"
                                              : "application/vnd.oci.image.config.v1+json"},
        {"digest", "sha256:" + config_hex},
        {"size", config_text.size()}}},
      {"layers", layers}};
  const std::string manifest_text = json::dump(manifest);
  PLFM_ASSIGN_OR_RETURN(std::string manifest_hex, putBlob(layout, manifest_text));
  BuiltImage out;
  out.manifest_digest = "sha256:" + manifest_hex;
  out.config_digest = "sha256:" + config_hex;
  out.top_digest = out.manifest_digest;
  Json top = {{"mediaType", manifest_type},
              {"digest", out.manifest_digest},
              {"size", manifest_text.size()}};
  if (spec.wrap_in_index) {
    // An arm64 sibling (same layers, its own config with Cmd ["--arm64"]),
    // listed first, and the amd64 manifest.
    Json arm_config = config;
    arm_config["architecture"] = "arm64";
    arm_config["config"]["Cmd"] = Json::array({"--arm64"});
    const std::string arm_config_text = json::dump(arm_config);
    PLFM_ASSIGN_OR_RETURN(std::string arm_config_hex, putBlob(layout, arm_config_text));
    Json arm_manifest = manifest;
    arm_manifest["config"]["digest"] = "sha256:" + arm_config_hex;
    arm_manifest["config"]["size"] = arm_config_text.size();
    const std::string arm_manifest_text = json::dump(arm_manifest);
    PLFM_ASSIGN_OR_RETURN(std::string arm_manifest_hex, putBlob(layout, arm_manifest_text));
    Json arm = {{"mediaType", manifest_type},
                {"digest", "sha256:" + arm_manifest_hex},
                {"size", arm_manifest_text.size()}};
    arm["platform"] = {{"os", "linux"}, {"architecture", "arm64"}};
    Json amd = top;
    amd["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
    Json index = {{"schemaVersion", 2},
                  {"mediaType", "application/vnd.oci.image.index.v1+json"},
                  {"manifests", Json::array({arm, amd})}};
    const std::string index_text = json::dump(index);
    PLFM_ASSIGN_OR_RETURN(std::string index_hex, putBlob(layout, index_text));
    out.top_digest = "sha256:" + index_hex;
    top = {{"mediaType", "application/vnd.oci.image.index.v1+json"},
           {"digest", out.top_digest},
           {"size", index_text.size()}};
  }
  top["annotations"] = {{"org.opencontainers.image.ref.name", tag}};
  Json outer = {{"schemaVersion", 2}, {"manifests", Json::array()}};
  if (auto existing = readFile(layout + "/index.json")) {
    if (auto parsed = json::parse(*existing); parsed && parsed->is_object()) outer = *parsed;
  }
  Json kept = Json::array();
  for (const auto& m : outer["manifests"]) {
    const Json& ann = m.contains("annotations") ? m["annotations"] : Json::object();
    if (!(ann.contains("org.opencontainers.image.ref.name") &&
          ann["org.opencontainers.image.ref.name"] == tag)) {
      kept.push_back(m);
    }
  }
  kept.push_back(top);
  outer["manifests"] = kept;
  PLFM_TRY(writeFileAtomic(layout + "/index.json", json::dump(outer)));
  return out;
}

}  // namespace plfm::image::testing
