// TXT lookups for domain ownership proofs (docs/specs/ingress/domains.md).
// The control plane asks only the resolver the operator configured
// (`--dns-resolver 127.0.0.1:5353`), never the system's, over glibc's
// libresolv with a short timeout. Answers are hostile bytes: libresolv's
// ns_parserr bounds every record, and the TXT rdata is split by
// parseTxtAnswer, which checks every length against what is left and is
// fuzzed (test/fuzz/dns_answer_fuzz.cc).
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::cp::dns {

// An IPv4 address and port ("127.0.0.1:5353"); the port defaults to 53.
// Errors name the field `dns_resolver`.
[[nodiscard]] Result<void> checkResolverAddress(std::string_view server);

// The TXT strings of the records for `qname` (lowercase, no trailing dot) in
// a DNS response: each record's character-strings joined (RFC 1035 3.3.14,
// as RFC 7208 3.3 joins them). Records of other names, types or classes are
// skipped; a malformed message is an error.
[[nodiscard]] Result<std::vector<std::string>> parseTxtAnswer(std::span<const uint8_t> msg,
                                                              std::string_view qname);

// Asks `server` (checkResolverAddress) for the TXT records of `qname`.
// NXDOMAIN and "no TXT records" are an empty list; no answer within
// `timeout` is kDeadlineExceeded and other failures kUnavailable, with
// messages that name the server and the name.
[[nodiscard]] Result<std::vector<std::string>> lookupTxt(std::string_view server,
                                                         std::string_view qname,
                                                         std::chrono::seconds timeout);

}  // namespace plfm::cp::dns
