// Fuzzes the strict secrets decoder and the dotenv reader with the same input.
// Properties: neither crashes; a decoded file re-encodes to exactly its input
// (the format is canonical); whatever the dotenv reader accepts encodes within
// the limits and decodes back to the same map.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "plfm/secrets/dotenv.h"
#include "plfm/secrets/format.h"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace plfm::secrets;  // NOLINT(google-build-using-namespace)
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  auto decoded = decode(input);
  if (decoded) {
    auto encoded = encode(*decoded);
    check(encoded.has_value() && *encoded == input);
  } else {
    check(!decoded.error().message.empty());
  }

  auto imported = parseDotenv(input);
  if (imported) {
    auto encoded = encode(*imported);
    check(encoded.has_value());
    auto again = decode(*encoded);
    check(again.has_value() && *again == *imported);
  }
  return 0;
}
