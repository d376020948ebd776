// Fuzzes the PROXY protocol decoder. Properties: no crash; whole and split
// feeding agree; a decoded v2 header re-encodes to exactly its input bytes
// (the encoder recomputes a CRC32C TLV in place, and the decoder verified it)
// except where the input used the free choices of the format: a LOCAL or
// UNSPEC address block, or an address family with a transport of UNSPEC.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>

#include "plfm/net/proxy_protocol.h"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using plfm::net::ParseStatus;
  using plfm::net::ProxyHeaderParser;
  const std::span<const uint8_t> input(data, size);

  ProxyHeaderParser whole;
  const auto r = whole.feed(input);
  check(r.consumed <= size);

  const size_t a = size == 0 ? 0 : (size_t{data[size - 1]} * 7919U) % (size + 1);
  ProxyHeaderParser pieces;
  size_t consumed = pieces.feed(input.subspan(0, a)).consumed;
  if (pieces.status() == ParseStatus::kNeedMore) consumed += pieces.feed(input.subspan(a)).consumed;
  check(pieces.status() == whole.status());
  check(pieces.error() == whole.error());
  check(consumed == r.consumed);

  if (whole.status() != ParseStatus::kDone) return 0;
  const auto& h = whole.header();
  check(h.bytes == r.consumed);
  if (h.version != 2) return 0;
  auto encoded = plfm::net::encodeProxyV2(h);
  check(encoded.has_value());
  const std::string_view original(reinterpret_cast<const char*>(data), r.consumed);
  const bool addressed =
      h.family == plfm::net::ProxyFamily::kInet || h.family == plfm::net::ProxyFamily::kInet6;
  if (addressed || h.family == plfm::net::ProxyFamily::kUnix) {
    // Same length and TLVs; the address block may differ only where the
    // format leaves a choice (bytes after a UNIX path's NUL).
    check(encoded->size() == original.size());
  }
  if (addressed) check(*encoded == original);

  ProxyHeaderParser again;
  const auto r2 = again.feed(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(encoded->data()), encoded->size()));
  check(r2.status == ParseStatus::kDone);
  check(again.header().tlvs == h.tlvs);
  check(again.header().source == h.source && again.header().destination == h.destination);
  return 0;
}
