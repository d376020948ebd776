// DNS messages for the node's internal-name responder (docs/specs/networking/
// mesh.md, "Internal names"): a bounded parser for queries from guests, the
// answers for PROCESS.APP[.ENV].internal from a ServiceTable, and the checks of
// a forwarded query's answer. Pure: no sockets, so every byte a guest sends
// can be fuzzed (test/dns_message_fuzz.cc). Wire format: RFC 1035 section 4,
// EDNS(0) per RFC 6891 (only the OPT record's payload size is read).
//
// The caller's org is the tag of the query's source address (bits 64..95,
// as MeshFilter::tagOf reads it), never anything in the query: a name of
// another org is NXDOMAIN, byte for byte like a missing one.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::netdev::dns {

inline constexpr std::uint16_t kTypeA = 1;
inline constexpr std::uint16_t kTypeAaaa = 28;
inline constexpr std::uint16_t kTypeOpt = 41;
inline constexpr std::uint16_t kClassIn = 1;
inline constexpr std::uint8_t kRcodeNoError = 0;
inline constexpr std::uint8_t kRcodeFormErr = 1;
inline constexpr std::uint8_t kRcodeServFail = 2;
inline constexpr std::uint8_t kRcodeNxDomain = 3;
inline constexpr std::uint8_t kRcodeNotImp = 4;
inline constexpr std::uint8_t kRcodeRefused = 5;
inline constexpr std::size_t kHeaderSize = 12;
// A classic UDP message; answers over UDP grow to the client's EDNS size,
// capped at kMaxUdpPayload (the DNS flag day 2020 value).
inline constexpr std::size_t kMinUdpPayload = 512;
inline constexpr std::size_t kMaxUdpPayload = 1232;
inline constexpr std::size_t kMaxTcpMessage = 65535;
inline constexpr std::uint32_t kInternalTtl = 5;
// At most this many AAAA records per name (the feed's limit too).
inline constexpr std::size_t kMaxAddresses = 64;

// One parsed query: exactly one question, no answer or authority records,
// at most an OPT record in the additional section.
struct Query {
  std::uint16_t id = 0;
  bool recursion_desired = false;
  bool checking_disabled = false;
  std::vector<std::string> labels;  // ASCII-lowercased, without the root
  std::uint16_t qtype = 0;
  std::uint16_t qclass = 0;
  std::optional<std::uint16_t> edns_payload;  // the OPT record's UDP size
  std::vector<std::uint8_t> question;         // the question's wire bytes, as sent

  // The largest answer the client takes over UDP.
  [[nodiscard]] std::size_t udpLimit() const;
  // Whether the name is under .internal (answered here, never forwarded).
  [[nodiscard]] bool internal() const;
};

// Parses a query. An error means FORMERR (or NOTIMP for an opcode other
// than QUERY: see errorReply). Never reads past `wire`.
[[nodiscard]] Result<Query> parseQuery(std::span<const std::uint8_t> wire);

// The reply to an unparseable message: FORMERR (NOTIMP for another opcode)
// with the header's id and no sections, or empty (send nothing) when the
// message is too short to have an id or is itself a response.
[[nodiscard]] std::vector<std::uint8_t> errorReply(std::span<const std::uint8_t> wire);

// The healthy addresses of every process the node's guests may name, per
// org tag. Filled from the control plane's services feed.
struct ServiceEntry {
  std::uint32_t org_tag = 0;
  std::string app;
  std::string env;
  std::string process;
  std::vector<in6_addr> addresses;  // instance-id order, at most kMaxAddresses
};

class ServiceTable {
 public:
  ServiceTable() = default;
  explicit ServiceTable(const std::vector<ServiceEntry>& entries);

  // The addresses `labels` (lowercase, ending in "internal") name for
  // `org_tag`, or nullopt when the name does not exist for that org.
  // PROCESS.APP.internal is the env "prod", else the app's only env.
  [[nodiscard]] std::optional<std::vector<in6_addr>> lookup(
      std::uint32_t org_tag, const std::vector<std::string>& labels) const;
  [[nodiscard]] std::size_t size() const { return by_name_.size(); }

 private:
  using Key = std::tuple<std::uint32_t, std::string, std::string, std::string>;  // tag app env proc
  std::map<Key, std::vector<in6_addr>> by_name_;
  std::map<std::tuple<std::uint32_t, std::string>, std::vector<std::string>> envs_;  // tag app
};

// The answer to an internal name for a caller of `org_tag`: AAAA records
// (TTL kInternalTtl, as many as fit in `limit` bytes, TC set when some did
// not), NODATA for another type of an existing name, NXDOMAIN otherwise.
[[nodiscard]] std::vector<std::uint8_t> answerInternal(const Query& q, std::uint32_t org_tag,
                                                       const ServiceTable& table,
                                                       std::size_t limit);

// A reply with `rcode` and no records (SERVFAIL when no upstream answers).
[[nodiscard]] std::vector<std::uint8_t> emptyReply(const Query& q, std::uint8_t rcode);

// The query sent upstream for a name outside .internal: the same question,
// a fresh id, RD and CD as asked, the client's EDNS size.
[[nodiscard]] std::vector<std::uint8_t> forwardQuery(const Query& q, std::uint16_t id);

// Whether `answer` answers forwardQuery(q, id): a response, the same id and
// opcode, exactly one question equal to q's (case-insensitively).
[[nodiscard]] bool answersForward(std::span<const std::uint8_t> answer, const Query& q,
                                  std::uint16_t id);

// The upstream's answer relayed to the client: a copy with the client's id.
[[nodiscard]] std::vector<std::uint8_t> relayAnswer(std::span<const std::uint8_t> answer,
                                                    const Query& q);

}  // namespace plfm::netdev::dns
