// An incremental, strict parser for the TLS ClientHello, for the L4 ingress:
// it reads just enough of a connection to route it by SNI (RFC 6066 §3) and
// report ALPN (RFC 7301) and the offered versions (RFC 8446 §4.2.1) for
// metrics, without terminating TLS.
//
//   ClientHelloParser parser;
//   for (;;) {
//     auto n = read(fd, buf, sizeof buf);          // the caller owns the timeout
//     forward_later.append(buf, n);                // bytes are forwarded verbatim
//     auto r = parser.feed({buf, n});
//     if (r.status == ParseStatus::kNeedMore) continue;
//     if (r.status == ParseStatus::kError) return close(parser.errorName());
//     route(parser.hello().normalizedSni());       // kDone
//   }
//
// The parser follows the record layer (RFC 8446 §5.1): a ClientHello may be
// fragmented over several handshake records and the bytes may arrive in any
// pieces, down to one at a time. It stops exactly at the end of the record
// that completes the ClientHello and never needs a byte after it. It rejects
// anything else: non-handshake records, SSLv2-compatible hellos, bad record
// versions or lengths, other handshake messages, a record that continues past
// the ClientHello, malformed vectors, duplicate extensions, and invalid host
// names; and it bounds memory with tls::kMaxClientHelloBytes and
// tls::kMaxRecords. Errors are values (no exceptions, no allocation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/net/parse_status.h"

namespace plfm::net {

// Why a ClientHello was rejected. helloErrorName() gives each a stable
// snake_case name, used as a metric label.
enum class HelloError {
  kNone,
  kNotTls,              // the first byte is not a TLS handshake record
  kSslV2,               // an SSLv2-compatible ClientHello
  kBadRecord,           // record version or length out of range
  kTooManyRecords,      // more than tls::kMaxRecords records
  kNotClientHello,      // the first handshake message is something else
  kTooLarge,            // longer than tls::kMaxClientHelloBytes
  kTrailingData,        // the last record continues after the ClientHello
  kMalformed,           // a length or vector inside the ClientHello is wrong
  kDuplicateExtension,  // RFC 8446 §4.2: one extension of each type at most
  kBadServerName,       // the server_name extension or the host name in it
};

[[nodiscard]] std::string_view helloErrorName(HelloError e);

struct ClientHello {
  uint16_t legacy_version = 0;               // ClientHello.legacy_version
  std::optional<std::string> sni;            // host_name as sent (validated, any case)
  std::vector<std::string> alpn;             // protocol names as sent, in order
  std::vector<uint16_t> supported_versions;  // as sent (GREASE included); empty if absent
  size_t records = 0;                        // handshake records that carried it
  size_t bytes = 0;                          // bytes of those records, headers included

  // The SNI in lower case, for routing (DNS names compare case-insensitively).
  [[nodiscard]] std::optional<std::string> normalizedSni() const;
  // The versions the client offers: supported_versions without GREASE
  // values, or just legacy_version when the extension is absent (TLS <= 1.2).
  [[nodiscard]] std::vector<uint16_t> offeredVersions() const;
};

// "TLSv1.3", "TLSv1.2", ..., "SSLv3", or "0x7f1c" for anything else.
[[nodiscard]] std::string tlsVersionName(uint16_t version);

class ClientHelloParser {
 public:
  // Takes bytes in arrival order. After kDone or kError it takes nothing more
  // and keeps reporting the same status.
  FeedResult feed(std::span<const uint8_t> data);

  [[nodiscard]] ParseStatus status() const { return status_; }
  // Complete once status() is kDone.
  [[nodiscard]] const ClientHello& hello() const { return hello_; }
  // Total bytes consumed over all feed() calls.
  [[nodiscard]] size_t consumed() const { return consumed_; }

  [[nodiscard]] HelloError error() const { return error_; }
  [[nodiscard]] std::string_view errorName() const { return helloErrorName(error_); }
  // A fixed human-readable explanation, e.g. "record length is zero".
  [[nodiscard]] std::string_view errorMessage() const { return error_message_; }

 private:
  bool fail(HelloError e, std::string_view message);  // returns false
  bool checkRecordHeaderByte(size_t index);
  bool checkHandshakeProgress();
  void parseBody();
  bool parseExtensions(std::span<const uint8_t> data);
  bool parseServerName(std::span<const uint8_t> data);
  bool parseAlpn(std::span<const uint8_t> data);
  bool parseSupportedVersions(std::span<const uint8_t> data);

  ParseStatus status_ = ParseStatus::kNeedMore;
  HelloError error_ = HelloError::kNone;
  std::string_view error_message_;
  ClientHello hello_;
  size_t consumed_ = 0;

  uint8_t record_header_[5] = {};
  size_t record_header_len_ = 0;
  size_t record_remaining_ = 0;     // payload bytes of the current record still to come
  std::vector<uint8_t> handshake_;  // the handshake message, reassembled
  size_t handshake_total_ = 0;      // header + body, once the header is known
};

}  // namespace plfm::net
