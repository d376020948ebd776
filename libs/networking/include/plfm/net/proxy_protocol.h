// PROXY protocol (haproxy doc/proxy-protocol.txt): the header an L4 proxy
// puts in front of a connection so that the server learns the client's
// address. The ingress writes version 2 headers to backends whose route opts
// in (ADR 0007), and reads them when it sits behind a load balancer that
// sends one.
//
//   ProxyHeader h = ProxyHeader::tcp(client, listener);   // PROXY, TCP
//   PLFM_ASSIGN_OR_RETURN(std::string bytes, encodeProxyV2(h));
//   send(backend, bytes); then the client's bytes.
//
//   ProxyHeaderParser parser;               // incremental, like ClientHelloParser
//   auto r = parser.feed(bytes);            // kNeedMore / kDone / kError
//   parser.header().source                  // the client, if the header has one
//
// Decoding (spec §2.2): the 12-byte signature, version 2 only, the LOCAL and
// PROXY commands, the four families and three transports (anything else is
// rejected, as the spec requires), address blocks, and TLVs, which must tile
// the rest of the header exactly. A CRC32C TLV (§2.2.3) is verified. The
// human-readable version 1 line (§2.1) is also parsed unless disabled, as the
// spec recommends for v2 receivers; it is strict: exact spacing, canonical
// addresses, no leading zeros, CRLF within 107 bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/net/parse_status.h"
#include "plfm/net/proxy_protocol_wire.h"

namespace plfm::net {

// An IPv4 or IPv6 address with a port.
struct IpEndpoint {
  bool v6 = false;
  std::array<uint8_t, 16> address{};  // IPv4 uses the first 4 bytes
  uint16_t port = 0;

  [[nodiscard]] static IpEndpoint ipv4(const std::array<uint8_t, 4>& a, uint16_t port);
  [[nodiscard]] static IpEndpoint ipv6(const std::array<uint8_t, 16>& a, uint16_t port);
  // "192.0.2.1:443" or "[2001:db8::1]:443".
  [[nodiscard]] static std::optional<IpEndpoint> parse(std::string_view text);

  [[nodiscard]] std::string ip() const;        // "192.0.2.1", "2001:db8::1"
  [[nodiscard]] std::string toString() const;  // with the port, IPv6 in brackets
  // ::ffff:a.b.c.d for an IPv4 endpoint (RFC 4291 §2.5.5.2); itself otherwise.
  [[nodiscard]] IpEndpoint toV6() const;

  friend bool operator==(const IpEndpoint&, const IpEndpoint&) = default;
};

enum class ProxyCommand : uint8_t { kLocal = proxy::kCommandLocal, kProxy = proxy::kCommandProxy };
enum class ProxyFamily : uint8_t {
  kUnspec = proxy::kFamilyUnspec,
  kInet = proxy::kFamilyInet,
  kInet6 = proxy::kFamilyInet6,
  kUnix = proxy::kFamilyUnix,
};
enum class ProxyTransport : uint8_t {
  kUnspec = proxy::kTransportUnspec,
  kStream = proxy::kTransportStream,
  kDgram = proxy::kTransportDgram,
};

struct ProxyTlv {
  uint8_t type = 0;
  std::string value;
  friend bool operator==(const ProxyTlv&, const ProxyTlv&) = default;
};

struct ProxyHeader {
  int version = 2;  // 1 for a text header
  ProxyCommand command = ProxyCommand::kProxy;
  ProxyFamily family = ProxyFamily::kUnspec;
  ProxyTransport transport = ProxyTransport::kUnspec;
  // Set for INET/INET6 (TCP4/TCP6 in v1) headers, LOCAL ones included.
  std::optional<IpEndpoint> source;
  std::optional<IpEndpoint> destination;
  // Set for UNIX headers: the socket paths, up to their first NUL.
  std::string unix_source;
  std::string unix_destination;
  std::vector<ProxyTlv> tlvs;  // in order; a verified CRC32C TLV stays in the list
  size_t bytes = 0;            // length of the header on the wire

  // A PROXY command for a TCP connection from `source` to `destination`.
  [[nodiscard]] static ProxyHeader tcp(const IpEndpoint& source, const IpEndpoint& destination);
  // A LOCAL command (health checks: the receiver uses the real endpoints).
  [[nodiscard]] static ProxyHeader local();

  // The client's address, when the receiver should use it: a PROXY command
  // with an address (not LOCAL, not UNSPEC/UNKNOWN).
  [[nodiscard]] std::optional<IpEndpoint> clientAddress() const;
  [[nodiscard]] const ProxyTlv* findTlv(uint8_t type) const;
};

struct ProxyEncodeOptions {
  bool crc32c = false;  // append a CRC32C TLV (§2.2.3)
};

// Encodes a version 2 header. INET/INET6 headers need both endpoints; when
// their families differ, both are written as IPv6 (IPv4-mapped), as haproxy
// does. A LOCAL header carries no address (family UNSPEC) unless given one.
// Fails when the TLVs do not fit the 16-bit length or an endpoint is missing.
[[nodiscard]] Result<std::string> encodeProxyV2(const ProxyHeader& header,
                                                const ProxyEncodeOptions& options = {});

// CRC32C (Castagnoli), as the PROXY protocol and SCTP use it (RFC 4960
// appendix B).
[[nodiscard]] uint32_t crc32c(std::span<const uint8_t> data);

enum class ProxyError {
  kNone,
  kNotProxy,     // neither the v2 signature nor "PROXY "
  kV1Disabled,   // a v1 header where only v2 is accepted
  kBadVersion,   // v2 signature with a version other than 2
  kBadCommand,   // neither LOCAL nor PROXY
  kBadFamily,    // an unassigned family or transport
  kTooLarge,     // longer than the configured limit
  kBadAddress,   // address block too short, or bad v1 address or port
  kBadTlv,       // TLVs that do not tile the rest of the header
  kBadChecksum,  // CRC32C mismatch
  kBadV1,        // malformed version 1 line
};
[[nodiscard]] std::string_view proxyErrorName(ProxyError e);

class ProxyHeaderParser {
 public:
  struct Options {
    bool accept_v1 = true;
    size_t max_bytes = proxy::kMaxHeaderBytes;
  };

  ProxyHeaderParser() = default;
  explicit ProxyHeaderParser(Options options) : options_(options) {}

  FeedResult feed(std::span<const uint8_t> data);

  [[nodiscard]] ParseStatus status() const { return status_; }
  [[nodiscard]] const ProxyHeader& header() const { return header_; }
  [[nodiscard]] ProxyError error() const { return error_; }
  [[nodiscard]] std::string_view errorName() const { return proxyErrorName(error_); }
  [[nodiscard]] std::string_view errorMessage() const { return error_message_; }

 private:
  bool fail(ProxyError e, std::string_view message);  // returns false
  bool checkPrefix();
  void finishV2();
  void finishV1();
  bool parseV2Addresses(std::span<const uint8_t> block, size_t& used);
  bool parseTlvs(std::span<const uint8_t> tlvs);

  Options options_;
  ParseStatus status_ = ParseStatus::kNeedMore;
  ProxyError error_ = ProxyError::kNone;
  std::string_view error_message_;
  ProxyHeader header_;
  std::vector<uint8_t> buf_;  // the header so far (bounded by max_bytes)
  size_t total_ = 0;          // v2 header length, once known
};

}  // namespace plfm::net
