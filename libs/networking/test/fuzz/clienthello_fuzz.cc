// Fuzzes the ClientHello parser. Properties: no crash; feeding the input
// whole or split at a point chosen by the input gives the same status,
// error, consumed count and result; a successful parse never consumes past
// the input; inspectClientHello (with and without a PROXY header, as the
// haproxy captures in the corpus have) always produces serializable JSON.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "plfm/net/client_hello.h"
#include "plfm/net/inspect.h"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using plfm::net::ClientHelloParser;
  using plfm::net::ParseStatus;
  const std::span<const uint8_t> input(data, size);

  ClientHelloParser whole;
  const auto r = whole.feed(input);
  check(r.consumed <= size);
  check(r.status != ParseStatus::kNeedMore || r.consumed == size);

  // Split in three at points derived from the input.
  const size_t a = size == 0 ? 0 : (size_t{data[0]} * 7919U) % (size + 1);
  const size_t b = size == 0 ? 0 : a + (size_t{data[size - 1]} * 104729U) % (size - a + 1);
  ClientHelloParser pieces;
  size_t consumed = 0;
  for (auto part : {input.subspan(0, a), input.subspan(a, b - a), input.subspan(b)}) {
    if (pieces.status() != ParseStatus::kNeedMore) break;
    consumed += pieces.feed(part).consumed;
  }
  check(pieces.status() == whole.status());
  check(pieces.error() == whole.error());
  check(consumed == whole.consumed());
  if (whole.status() == ParseStatus::kDone) {
    check(pieces.hello().sni == whole.hello().sni);
    check(pieces.hello().alpn == whole.hello().alpn);
    check(pieces.hello().supported_versions == whole.hello().supported_versions);
    check(whole.hello().bytes == whole.consumed());
  }

  for (bool proxy : {false, true}) {
    const auto json = plfm::net::inspectClientHello(input, proxy);
    check(json.contains("error") || json.contains("sni"));
    (void)json.dump();  // throws (and fails the run) on invalid UTF-8
  }
  return 0;
}
