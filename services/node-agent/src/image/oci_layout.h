// OciLayoutSource reads an OCI image layout directory (image-layout.md):
// oci-layout, index.json and blobs/sha256/<hex>, as `skopeo copy ... oci:DIR:TAG`
// and `umoci` write them. A tag is the org.opencontainers.image.ref.name
// annotation of an index.json entry; with no tag the index must name exactly
// one manifest. Bytes are verified by the cache like any other source.
#pragma once

#include <string>

#include "image/image_source.h"

namespace plfm::image {

class OciLayoutSource final : public ImageSource {
 public:
  explicit OciLayoutSource(std::string dir) : dir_(std::move(dir)) {}

  [[nodiscard]] Result<FetchedManifest> fetchManifest(std::string_view reference) override;
  [[nodiscard]] Result<void> fetchBlob(const Descriptor& blob, BlobWriter& writer) override;
  [[nodiscard]] Result<void> checkBlob(const Descriptor& blob) override;
  [[nodiscard]] std::string describe() const override { return "oci:" + dir_; }

 private:
  [[nodiscard]] Result<std::string> readBlob(const Digest& d) const;
  std::string dir_;
};

}  // namespace plfm::image
