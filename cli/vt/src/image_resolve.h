// Pins an image reference to a manifest digest for `vt deploy`, so a release
// always names exactly one image even when the tag moves later.
//
//   name@sha256:<hex>    already pinned; used as is
//   oci:DIR[:TAG]        an OCI image layout on disk (index.json)
//   [host[:port]/]repo[:tag]   a registry (Distribution API v2): HEAD/GET
//                        /v2/<repo>/manifests/<tag>, following the bearer
//                        token challenge; plain http for loopback hosts
#pragma once

#include <string>

#include "plfm/core/result.h"

namespace plfm::vt {

struct PinnedImage {
  std::string ref;     // as the user wrote it
  std::string digest;  // "sha256:<64 hex>"
};

[[nodiscard]] Result<PinnedImage> pinImage(const std::string& ref);

}  // namespace plfm::vt
