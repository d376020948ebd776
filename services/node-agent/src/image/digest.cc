#include "image/digest.h"

#include "plfm/core/sha256.h"
#include "plfm/core/strings.h"

namespace plfm::image {

bool isSha256Hex(std::string_view hex) {
  if (hex.size() != 64) return false;
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Result<Digest> Digest::parse(std::string_view text) {
  constexpr std::string_view kPrefix = "sha256:";
  if (!startsWith(text, kPrefix)) {
    return Error(errc::kInvalidArgument, "digest '" + std::string(text.substr(0, 80)) +
                                             "' is not sha256:<64 hex>; only sha256 is supported");
  }
  const std::string_view hex = text.substr(kPrefix.size());
  if (!isSha256Hex(hex)) {
    return Error(errc::kInvalidArgument,
                 "digest '" + std::string(text.substr(0, 80)) +
                     "' must be sha256: followed by 64 lowercase hex characters");
  }
  return Digest(std::string(hex));
}

Digest Digest::fromHex(std::string hex) { return Digest(std::move(hex)); }

Digest Digest::of(std::string_view bytes) { return Digest(Sha256::hex(bytes)); }

}  // namespace plfm::image
