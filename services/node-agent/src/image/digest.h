// Digest is a content address: "sha256:<64 lowercase hex>" (OCI image spec,
// descriptor.md "Digests"). Only sha256 is accepted; it is the one algorithm
// every registry and layout we pull from uses, and accepting others would
// mean trusting hashes we cannot verify.
//
//   PLFM_ASSIGN_OR_RETURN(auto d, Digest::parse("sha256:e3b0..."));
//   d.str();   // "sha256:e3b0..."
//   d.hex();   // "e3b0..." (file names in the cache)
#pragma once

#include <compare>
#include <string>
#include <string_view>

#include "plfm/core/result.h"

namespace plfm::image {

class Digest {
 public:
  Digest() = default;

  // Strict: "sha256:" then exactly 64 lowercase hex characters.
  [[nodiscard]] static Result<Digest> parse(std::string_view text);
  // From a hex string computed by Sha256::hexDigest().
  [[nodiscard]] static Digest fromHex(std::string hex);
  // The digest of `bytes`.
  [[nodiscard]] static Digest of(std::string_view bytes);

  [[nodiscard]] bool valid() const { return !hex_.empty(); }
  [[nodiscard]] const std::string& hex() const { return hex_; }
  [[nodiscard]] std::string str() const { return "sha256:" + hex_; }
  // "sha256:0123456789ab" for progress lines.
  [[nodiscard]] std::string shortStr() const { return "sha256:" + hex_.substr(0, 12); }

  // NOLINTNEXTLINE(modernize-use-nullptr): clang-tidy 14 misreads a defaulted <=>.
  auto operator<=>(const Digest&) const = default;

 private:
  explicit Digest(std::string hex) : hex_(std::move(hex)) {}
  std::string hex_;
};

// True when `hex` is 64 lowercase hex characters.
[[nodiscard]] bool isSha256Hex(std::string_view hex);

}  // namespace plfm::image
