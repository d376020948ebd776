// Fuzzes what a guest sends the node's DNS responder (netdev/dns_message.h)
// and what an upstream resolver answers. Beyond not crashing: a parsed query
// answers within its limit with its own id, an unparsed one gets a header or
// nothing, a forwarded query parses back to the same question, and an answer
// is relayed only when it matches.
#include <cstddef>
#include <cstdint>
#include <span>

#include "netdev/dns_message.h"

namespace {
using namespace plfm::netdev::dns;

const ServiceTable& table() {
  static const ServiceTable t({{7, "hello", "prod", "web", {in6_addr{}, in6_addr{}}},
                               {7, "hello", "dev", "web", {in6_addr{}}},
                               {9, "api", "dev", "web", {in6_addr{}}}});
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  auto q = parseQuery(in);
  if (!q) {
    const auto r = errorReply(in);
    if (!r.empty() && r.size() != kHeaderSize) __builtin_trap();
    return 0;
  }
  for (const std::uint32_t tag : {0U, 7U, 9U}) {
    const auto r = answerInternal(*q, tag, table(), q->udpLimit());
    if (r.size() > q->udpLimit() && r.size() > kHeaderSize + q->question.size() + 11) {
      __builtin_trap();
    }
    if (r.size() < kHeaderSize || ((r[0] << 8) | r[1]) != q->id) __builtin_trap();
  }
  const auto f = forwardQuery(*q, 0xabcd);
  auto again = parseQuery(f);
  if (!again || again->question != q->question || again->id != 0xabcd) __builtin_trap();
  // The input as an upstream's answer to the forwarded question.
  if (answersForward(in, *q, q->id) && relayAnswer(in, *q).size() != size) __builtin_trap();
  return 0;
}
