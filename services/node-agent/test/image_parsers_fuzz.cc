// Fuzzes everything the image pipeline parses from untrusted bytes: manifests
// and indexes, image configs, image references, WWW-Authenticate challenges,
// credentials files, layer entry names, xattr names, and pax extended
// headers of a layer applied into a staging tree. The first byte picks the
// parser (0xf8 and up: the xattr cases; below, byte % 6 as before, so the
// committed seeds keep their meaning).
#include <unistd.h>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "image/image_config.h"
#include "image/image_ref.h"
#include "image/layer_applier.h"
#include "image/manifest.h"
#include "image/path_safety.h"
#include "image/registry_auth.h"
#include "plfm/core/process.h"
#include "support/raw_tar.h"

namespace {

// The input is the body of a pax extended header in front of one file entry;
// whatever libarchive makes of it, no xattr name outside the allow-list may
// reach the ext4 fixups.
void applyPaxLayer(std::string_view pax) {
  namespace fs = std::filesystem;
  static const std::string root = [] {
    std::string t = "/dev/shm/plfm-fuzz-XXXXXX";
    if (::mkdtemp(t.data()) == nullptr) std::abort();
    return t;
  }();
  const std::string stage = root + "/stage";
  const std::string tar_path = root + "/layer.tar";
  std::error_code ec;
  fs::remove_all(stage, ec);
  fs::create_directory(stage, ec);
  const std::string tar = plfm::image::testing::rawTar({{"f", '0', "x", {std::string(pax)}}});
  if (!plfm::writeFileAtomic(tar_path, tar)) std::abort();
  plfm::image::LayerApplier a(stage, {});
  if (a.apply(tar_path, plfm::image::Digest::of(tar), std::nullopt) && a.finish()) {
    for (const auto& [path, fixup] : a.fixups()) {
      for (const auto& [name, value] : fixup.xattrs) {
        if (plfm::image::checkXattrName(name) != plfm::image::XattrNameVerdict::kAllowed ||
            value.size() > plfm::image::kMaxXattrValueBytes) {
          __builtin_trap();
        }
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  using namespace plfm::image;  // NOLINT(google-build-using-namespace)
  if (data[0] >= 0xf8) {
    if ((data[0] & 1) == 0) {
      (void)plfm::image::describe(plfm::image::checkXattrName(in));
      (void)plfm::image::printable(in);
    } else {
      applyPaxLayer(in);
    }
    return 0;
  }
  switch (data[0] % 6) {
    case 0: {
      auto doc = parseManifestDocument(in);
      if (doc && doc->index) (void)selectPlatform(*doc->index, "linux", "amd64");
      break;
    }
    case 1:
      (void)parseImageConfig(in);
      break;
    case 2: {
      auto ref = parseImageRef(in);
      if (ref) {
        (void)ref->str();
        (void)ref->apiHost();
      }
      break;
    }
    case 3:
      (void)parseAuthChallenge(in);
      break;
    case 4:
      (void)parseCredentials(in);
      break;
    default: {
      auto clean = cleanEntryPath(in);
      if (clean) (void)classifyWhiteout(*clean);
      break;
    }
  }
  return 0;
}
