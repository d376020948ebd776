// libFuzzer target for the DNS answers domain verification reads
// (dns_txt.h, docs/specs/ingress/domains.md): the resolver's bytes are
// hostile. Beyond "no crash, no leak, no UB" it checks that every TXT
// string returned fits in the message it came from.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "dns_txt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto txt = plfm::cp::dns::parseTxtAnswer(std::span<const uint8_t>(data, size),
                                                 "_plfm-challenge.example.com");
  if (txt) {
    for (const auto& t : *txt) {
      if (t.size() > size) {
        std::fprintf(stderr, "dns_answer_fuzz: a TXT string longer than the message\n");
        std::abort();
      }
    }
  } else if (txt.error().message().empty()) {
    std::fprintf(stderr, "dns_answer_fuzz: an error without a message\n");
    std::abort();
  }
  return 0;
}
