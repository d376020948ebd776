// Fuzzes everything the image pipeline parses from untrusted bytes: manifests
// and indexes, image configs, image references, WWW-Authenticate challenges,
// credentials files and layer entry names. The first byte picks the parser.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "image/image_config.h"
#include "image/image_ref.h"
#include "image/manifest.h"
#include "image/path_safety.h"
#include "image/registry_auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  using namespace plfm::image;  // NOLINT(google-build-using-namespace)
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
