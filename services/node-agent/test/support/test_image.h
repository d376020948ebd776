// Test and benchmark helpers that build OCI images from scratch: tar layers
// written with libarchive (whiteouts, opaque dirs, hardlinks, symlinks,
// device nodes, owners, xattrs, big files, hostile names), compressed with
// gzip, zstd or nothing, assembled into an OCI image layout that skopeo and
// umoci read and that skopeo pushes to a registry.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::image::testing {

struct TarEntry {
  enum class Type { kFile, kDir, kSymlink, kHardlink, kCharDev, kBlockDev, kFifo };
  Type type = Type::kFile;
  std::string path;
  std::string content;      // kFile
  uint64_t zero_bytes = 0;  // kFile: this many zero bytes instead of `content`
  std::string target;       // kSymlink target, kHardlink target path
  uint32_t mode = 0644;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t major = 0;
  uint32_t minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
  int64_t mtime = 1'700'000'000;
};

TarEntry file(std::string path, std::string content, uint32_t mode = 0644);
TarEntry dir(std::string path, uint32_t mode = 0755);
TarEntry symlink(std::string path, std::string target);
TarEntry hardlink(std::string path, std::string target);
TarEntry whiteout(const std::string& path);    // ".wh." + basename in the same directory
TarEntry opaque(const std::string& dir_path);  // dir_path/.wh..wh..opq

enum class Compression { kNone, kGzip, kZstd };

// Writes a tar layer (pax format) to `path`.
[[nodiscard]] Result<void> writeLayer(const std::string& path, const std::vector<TarEntry>& entries,
                                      Compression compression);
// Tars the host tree `dir` (relative names, owners as on the host) into `path`.
[[nodiscard]] Result<void> writeLayerFromDir(const std::string& path, const std::string& dir,
                                             const std::vector<std::string>& subpaths,
                                             Compression compression);
// Compresses a file with gzip or zstd at `level` (gzip 1-9, zstd 1-19).
[[nodiscard]] Result<void> compressFile(const std::string& in, const std::string& out,
                                        Compression compression, int level = 1);

struct ImageSpec {
  std::vector<std::string> layer_files;  // compressed or plain tar files, in order
  std::vector<Compression> compressions;
  std::vector<std::string> entrypoint = {"/bin/app"};
  std::vector<std::string> cmd = {"--serve"};
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "APP_MODE=test"};
  std::string workdir = "/srv";
  std::string user = "1000:1000";
  std::vector<std::string> exposed_ports = {"8080/tcp"};
  bool docker_media_types = false;  // Docker schema2 instead of OCI
  bool wrap_in_index = false;       // an index with linux/arm64 (Cmd ["--arm64"]) and linux/amd64
};

struct BuiltImage {
  std::string manifest_digest;  // of the linux/amd64 manifest
  std::string top_digest;       // what the tag points at (index or manifest)
  std::string config_digest;
};

// Adds an image to the OCI layout at `layout_dir` (created if needed) under `tag`.
[[nodiscard]] Result<BuiltImage> writeOciImage(const std::string& layout_dir,
                                               const std::string& tag, const ImageSpec& spec);

}  // namespace plfm::image::testing
