// ImageRef names an image to pull. Two transports:
//
//   registry   "registry/repo:tag", "repo@sha256:...", "localhost:5000/x",
//              "alpine" (= docker.io/library/alpine:latest). The grammar is
//              Docker's reference grammar (distribution/reference): the first
//              path component is a registry host when it contains '.' or ':'
//              or is "localhost"; otherwise the registry is docker.io and a
//              one-component repository gets the "library/" prefix.
//   oci layout "oci:DIR" or "oci:DIR:TAG", as skopeo and umoci write it (the
//              tag is the org.opencontainers.image.ref.name annotation in
//              DIR/index.json). Without a tag the layout must hold one image.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "image/digest.h"
#include "plfm/core/result.h"

namespace plfm::image {

inline constexpr std::string_view kDockerHub = "docker.io";
// Where docker.io's distribution API really lives.
inline constexpr std::string_view kDockerHubApiHost = "registry-1.docker.io";

struct ImageRef {
  enum class Transport { kRegistry, kOciLayout };
  Transport transport = Transport::kRegistry;
  std::string registry;    // "docker.io", "127.0.0.1:5000" (registry transport)
  std::string repository;  // "library/alpine"
  std::string tag;         // "latest"; empty when pinned by digest only
  std::optional<Digest> digest;
  std::string layout_dir;  // oci transport

  // The tag, or the digest when pinned: what the manifests endpoint takes.
  [[nodiscard]] std::string reference() const;
  // Canonical text: "docker.io/library/alpine:latest", "oci:/d:tag".
  [[nodiscard]] std::string str() const;
  // The host to talk to for the distribution API (docker.io -> registry-1.docker.io).
  [[nodiscard]] std::string apiHost() const;
};

[[nodiscard]] Result<ImageRef> parseImageRef(std::string_view text);

}  // namespace plfm::image
