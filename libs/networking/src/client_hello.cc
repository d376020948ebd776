#include "plfm/net/client_hello.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "byte_reader.h"
#include "plfm/net/tls_wire.h"

namespace plfm::net {

using internal::ByteReader;

namespace {

// legacy_version(2) random(32) session_id<0..32>(1+) cipher_suites<2..>(2+2)
// compression_methods<1..>(1+1): RFC 8446 §4.1.2.
constexpr size_t kMinClientHelloBody = 2 + tls::kRandomBytes + 1 + 2 + 2 + 1 + 1;

bool isHostNameChar(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

// RFC 6066 §3: "HostName" contains the fully qualified DNS hostname ... as a
// byte string using ASCII encoding without a trailing dot. We accept LDH
// labels plus '_' (seen in real names), 1 to 63 bytes each, 253 in all.
bool validHostName(std::span<const uint8_t> name) {
  if (name.empty() || name.size() > tls::kMaxHostNameBytes) return false;
  size_t label = 0;
  for (uint8_t c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (isHostNameChar(c) && ++label <= tls::kMaxLabelBytes) {
      continue;
    } else {
      return false;
    }
  }
  return label != 0;
}

std::string toString(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

struct Extension {
  uint16_t type = 0;
  std::span<const uint8_t> data;
};

}  // namespace

std::string_view helloErrorName(HelloError e) {
  switch (e) {
    case HelloError::kNone:
      return "none";
    case HelloError::kNotTls:
      return "not_tls";
    case HelloError::kSslV2:
      return "sslv2";
    case HelloError::kBadRecord:
      return "bad_record";
    case HelloError::kTooManyRecords:
      return "too_many_records";
    case HelloError::kNotClientHello:
      return "not_client_hello";
    case HelloError::kTooLarge:
      return "too_large";
    case HelloError::kTrailingData:
      return "trailing_data";
    case HelloError::kMalformed:
      return "malformed";
    case HelloError::kDuplicateExtension:
      return "duplicate_extension";
    case HelloError::kBadServerName:
      return "bad_server_name";
  }
  return "unknown";
}

std::optional<std::string> ClientHello::normalizedSni() const {
  if (!sni) return std::nullopt;
  std::string out = *sni;
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::vector<uint16_t> ClientHello::offeredVersions() const {
  std::vector<uint16_t> out;
  for (uint16_t v : supported_versions) {
    if (!tls::isGrease(v)) out.push_back(v);
  }
  if (supported_versions.empty()) out.push_back(legacy_version);
  return out;
}

std::string tlsVersionName(uint16_t version) {
  switch (version) {
    case tls::kSsl30:
      return "SSLv3";
    case tls::kTls10:
      return "TLSv1.0";
    case tls::kTls11:
      return "TLSv1.1";
    case tls::kTls12:
      return "TLSv1.2";
    case tls::kTls13:
      return "TLSv1.3";
    default:
      break;
  }
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04x", version);
  return buf;
}

bool ClientHelloParser::fail(HelloError e, std::string_view message) {
  status_ = ParseStatus::kError;
  error_ = e;
  error_message_ = message;
  return false;
}

FeedResult ClientHelloParser::feed(std::span<const uint8_t> data) {
  if (status_ != ParseStatus::kNeedMore) return {status_, 0};
  size_t i = 0;
  while (i < data.size()) {
    if (record_remaining_ == 0) {
      // RFC 8446 §5.1 record header, checked byte by byte so that a
      // connection that is not TLS at all fails on its first byte.
      record_header_[record_header_len_] = data[i++];
      if (!checkRecordHeaderByte(record_header_len_++)) break;
      if (record_header_len_ < tls::kRecordHeaderBytes) continue;
      record_header_len_ = 0;
      record_remaining_ = size_t{record_header_[3]} << 8 | record_header_[4];
      if (++hello_.records > tls::kMaxRecords) {
        fail(HelloError::kTooManyRecords, "the ClientHello spans too many records");
        break;
      }
    } else {
      // The handshake header goes byte by byte, so that an error is found at
      // the same byte however the input is split.
      const size_t take = handshake_.size() < tls::kHandshakeHeaderBytes
                              ? 1
                              : std::min(record_remaining_, data.size() - i);
      handshake_.insert(handshake_.end(), data.begin() + static_cast<std::ptrdiff_t>(i),
                        data.begin() + static_cast<std::ptrdiff_t>(i + take));
      i += take;
      record_remaining_ -= take;
    }
    if (!checkHandshakeProgress()) break;
    if (handshake_total_ != 0 && handshake_.size() == handshake_total_ && record_remaining_ == 0) {
      hello_.bytes = consumed_ + i;
      parseBody();
      break;
    }
  }
  consumed_ += i;
  return {status_, i};
}

bool ClientHelloParser::checkRecordHeaderByte(size_t index) {
  const uint8_t b = record_header_[index];
  const bool first = hello_.records == 0;
  switch (index) {
    case 0:
      if (b == tls::kContentHandshake) return true;
      // An SSLv2-compatible hello has a 2-byte header with the top bit set
      // (RFC 5246 appendix E.2); TLS 1.3 forbids it (RFC 8446 appendix D.5).
      if (first && (b & 0x80) != 0) {
        return fail(HelloError::kSslV2, "SSLv2-compatible ClientHello is not supported");
      }
      if (first) return fail(HelloError::kNotTls, "not a TLS handshake record");
      // RFC 8446 §5.1: handshake messages MUST NOT be interleaved with other
      // record types.
      return fail(HelloError::kBadRecord, "a non-handshake record interrupts the ClientHello");
    case 1:
      if (b == 3) return true;
      return fail(HelloError::kBadRecord, "record version is not 3.x");
    case 2:
      // RFC 8446 §5.1 legacy_record_version: 0x0301 or 0x0303 in practice;
      // 0x0300 and 0x0302 come from older stacks.
      if (b <= 3) return true;
      return fail(HelloError::kBadRecord, "record version is above 3.3");
    case 4: {
      const size_t length = size_t{record_header_[3]} << 8 | b;
      // RFC 8446 §5.1: no zero-length handshake fragments, at most 2^14.
      if (length == 0) return fail(HelloError::kBadRecord, "record length is zero");
      if (length > tls::kMaxRecordPayload) {
        return fail(HelloError::kBadRecord, "record length is above 2^14");
      }
      return true;
    }
    default:
      return true;
  }
}

bool ClientHelloParser::checkHandshakeProgress() {
  if (handshake_.empty()) return true;
  if (handshake_[0] != tls::kHandshakeClientHello) {
    return fail(HelloError::kNotClientHello, "the first handshake message is not a ClientHello");
  }
  if (handshake_total_ == 0 && handshake_.size() >= tls::kHandshakeHeaderBytes) {
    const size_t length =
        size_t{handshake_[1]} << 16 | size_t{handshake_[2]} << 8 | size_t{handshake_[3]};
    if (tls::kHandshakeHeaderBytes + length > tls::kMaxClientHelloBytes) {
      return fail(HelloError::kTooLarge, "the ClientHello is larger than the limit");
    }
    if (length < kMinClientHelloBody) {
      return fail(HelloError::kMalformed, "the ClientHello is too short");
    }
    handshake_total_ = tls::kHandshakeHeaderBytes + length;
  }
  // Nothing may follow the ClientHello in its last record: the client sends
  // nothing else before the server's reply, and those bytes would not be ours
  // to read.
  if (handshake_total_ != 0 && handshake_.size() + record_remaining_ > handshake_total_) {
    return fail(HelloError::kTrailingData, "the record continues after the ClientHello");
  }
  return true;
}

void ClientHelloParser::parseBody() {
  ByteReader r(std::span<const uint8_t>(handshake_).subspan(tls::kHandshakeHeaderBytes));
  std::span<const uint8_t> session_id;
  std::span<const uint8_t> suites;
  std::span<const uint8_t> compression;
  r.u16(hello_.legacy_version);
  r.skip(tls::kRandomBytes);
  r.vec(1, session_id);
  r.vec(2, suites);
  r.vec(1, compression);
  if (!r.ok()) {
    fail(HelloError::kMalformed, "truncated ClientHello");
    return;
  }
  if (session_id.size() > tls::kMaxSessionIdBytes || suites.size() < 2 || suites.size() % 2 != 0 ||
      compression.empty()) {
    fail(HelloError::kMalformed, "bad session id, cipher suites or compression methods");
    return;
  }
  // Extensions are optional before TLS 1.3 (RFC 5246 §7.4.1.2).
  if (!r.empty()) {
    std::span<const uint8_t> extensions;
    r.vec(2, extensions);
    if (!r.ok() || !r.empty()) {
      fail(HelloError::kMalformed, "the extensions do not fill the ClientHello");
      return;
    }
    if (!parseExtensions(extensions)) return;
  }
  status_ = ParseStatus::kDone;
}

bool ClientHelloParser::parseExtensions(std::span<const uint8_t> data) {
  std::vector<Extension> extensions;
  ByteReader r(data);
  while (!r.empty()) {
    Extension ext;
    r.u16(ext.type);
    r.vec(2, ext.data);
    if (!r.ok()) return fail(HelloError::kMalformed, "truncated extension");
    extensions.push_back(ext);
  }
  // RFC 8446 §4.2: "There MUST NOT be more than one extension of the same
  // type in a given extension block." A second server_name would let two
  // parsers of the same bytes disagree about the route.
  std::vector<uint16_t> types;
  types.reserve(extensions.size());
  for (const auto& ext : extensions) types.push_back(ext.type);
  std::sort(types.begin(), types.end());
  if (std::adjacent_find(types.begin(), types.end()) != types.end()) {
    return fail(HelloError::kDuplicateExtension, "an extension appears twice");
  }
  for (const auto& ext : extensions) {
    bool ok = true;
    if (ext.type == tls::kExtServerName) ok = parseServerName(ext.data);
    if (ext.type == tls::kExtAlpn) ok = parseAlpn(ext.data);
    if (ext.type == tls::kExtSupportedVersions) ok = parseSupportedVersions(ext.data);
    if (!ok) return false;
  }
  return true;
}

// RFC 6066 §3: ServerNameList server_name_list<1..2^16-1>, each entry a
// NameType and, for host_name, a HostName<1..2^16-1>. "The ServerNameList
// MUST NOT contain more than one name of the same name_type." Only host_name
// is defined, and other types cannot be skipped reliably, so we refuse them.
bool ClientHelloParser::parseServerName(std::span<const uint8_t> data) {
  ByteReader r(data);
  std::span<const uint8_t> list;
  r.vec(2, list);
  if (!r.ok() || !r.empty() || list.empty()) {
    return fail(HelloError::kBadServerName, "malformed server_name extension");
  }
  ByteReader names(list);
  while (!names.empty()) {
    uint8_t type = 0;
    std::span<const uint8_t> name;
    names.u8(type);
    if (names.ok() && type != tls::kServerNameTypeHostName) {
      return fail(HelloError::kBadServerName, "unsupported server name type");
    }
    names.vec(2, name);
    if (!names.ok()) return fail(HelloError::kBadServerName, "malformed server_name extension");
    if (hello_.sni) return fail(HelloError::kBadServerName, "more than one host_name");
    if (!validHostName(name)) return fail(HelloError::kBadServerName, "invalid host name");
    hello_.sni = toString(name);
  }
  return true;
}

// RFC 7301 §3.1: ProtocolNameList protocol_name_list<2..2^16-1>, each a
// ProtocolName<1..2^8-1>.
bool ClientHelloParser::parseAlpn(std::span<const uint8_t> data) {
  ByteReader r(data);
  std::span<const uint8_t> list;
  r.vec(2, list);
  if (!r.ok() || !r.empty() || list.size() < 2) {
    return fail(HelloError::kMalformed, "malformed ALPN extension");
  }
  ByteReader names(list);
  while (!names.empty()) {
    std::span<const uint8_t> name;
    names.vec(1, name);
    if (!names.ok() || name.empty())
      return fail(HelloError::kMalformed, "malformed ALPN extension");
    hello_.alpn.push_back(toString(name));
  }
  return true;
}

// RFC 8446 §4.2.1: in a ClientHello, ProtocolVersion versions<2..254>.
bool ClientHelloParser::parseSupportedVersions(std::span<const uint8_t> data) {
  ByteReader r(data);
  std::span<const uint8_t> list;
  r.vec(1, list);
  if (!r.ok() || !r.empty() || list.size() < 2 || list.size() % 2 != 0) {
    return fail(HelloError::kMalformed, "malformed supported_versions extension");
  }
  for (size_t i = 0; i < list.size(); i += 2) {
    hello_.supported_versions.push_back(static_cast<uint16_t>(list[i] << 8 | list[i + 1]));
  }
  return true;
}

}  // namespace plfm::net
