// RegistrySource pulls from an OCI distribution API v2 registry
// (distribution-spec, "Pull"): manifests by tag or digest, blobs with
// redirects, Range resume and streaming.
//
// Authentication follows the registry's lead: anonymous first; on a 401 it
// answers the WWW-Authenticate challenge. For "Bearer" it gets a token from
// the realm (docker token spec: GET realm?service=..&scope=..), with basic
// credentials when it has some; for "Basic" it sends the credentials. A
// token is reused until the registry rejects it. libcurl stays inside
// registry_source.cc.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "image/address_policy.h"
#include "image/image_ref.h"
#include "image/image_source.h"
#include "image/registry_auth.h"

namespace plfm::image {

struct RegistryOptions {
  // "http" or "https"; empty picks http for loopback registries (localhost,
  // 127.0.0.0/8, [::1]) and those listed in `insecure`, https otherwise.
  std::string scheme;
  std::vector<std::string> insecure;  // registries reached over plain http
  std::optional<RegistryCredentials> credentials;
  std::chrono::seconds connect_timeout{10};
  // A transfer slower than 1 KiB/s for this long is aborted (and retried).
  std::chrono::seconds stall_timeout{30};
  std::chrono::seconds manifest_timeout{60};
  // When set, every connection (after DNS, and on every redirect and token
  // realm) must go to a public unicast address or one inside these prefixes
  // (address_policy.h); others fail with image.registry_refused. nullopt: no
  // check (tests, the operator's own `image pull`).
  std::optional<std::vector<IpPrefix>> address_allow;
};

class RegistrySource final : public ImageSource {
 public:
  RegistrySource(ImageRef ref, RegistryOptions options);
  ~RegistrySource() override;
  RegistrySource(const RegistrySource&) = delete;
  RegistrySource& operator=(const RegistrySource&) = delete;

  [[nodiscard]] Result<FetchedManifest> fetchManifest(std::string_view reference) override;
  [[nodiscard]] Result<void> fetchBlob(const Descriptor& blob, BlobWriter& writer) override;
  [[nodiscard]] Result<void> checkBlob(const Descriptor& blob) override;
  [[nodiscard]] std::string describe() const override;

  // The base URL in use, "http://127.0.0.1:5000".
  [[nodiscard]] std::string baseUrl() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace plfm::image
