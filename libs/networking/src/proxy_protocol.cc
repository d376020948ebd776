// Decoding of PROXY protocol headers (haproxy doc/proxy-protocol.txt).
#include "plfm/net/proxy_protocol.h"

#include <arpa/inet.h>

#include <algorithm>
#include <string>

#include "byte_reader.h"

namespace plfm::net {

using internal::ByteReader;

namespace {

std::string unixPath(std::span<const uint8_t> raw) {
  const auto nul = std::find(raw.begin(), raw.end(), uint8_t{0});
  return {reinterpret_cast<const char*>(raw.data()), static_cast<size_t>(nul - raw.begin())};
}

// §2.1: ports are decimal in [0..65535] without leading zeros.
bool parseV1Port(std::string_view s, uint16_t& out) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return false;
  out = static_cast<uint16_t>(v);
  return true;
}

// §2.1: IPv4 as four decimal numbers without leading zeros; IPv6 in its
// usual text form. inet_pton(AF_INET) accepts only the dotted-quad form;
// the leading-zero rule is checked here.
bool parseV1Address(std::string_view s, bool v6, IpEndpoint& out) {
  if (s.empty() || s.size() > 45) return false;
  if (!v6) {
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const bool starts_number = i == 0 || s[i - 1] == '.';
      if (starts_number && s[i] == '0' && s[i + 1] != '.') return false;
    }
  }
  const std::string z(s);
  out.v6 = v6;
  return ::inet_pton(v6 ? AF_INET6 : AF_INET, z.c_str(), out.address.data()) == 1;
}

}  // namespace

std::string_view proxyErrorName(ProxyError e) {
  switch (e) {
    case ProxyError::kNone:
      return "none";
    case ProxyError::kNotProxy:
      return "not_proxy";
    case ProxyError::kV1Disabled:
      return "v1_disabled";
    case ProxyError::kBadVersion:
      return "bad_version";
    case ProxyError::kBadCommand:
      return "bad_command";
    case ProxyError::kBadFamily:
      return "bad_family";
    case ProxyError::kTooLarge:
      return "too_large";
    case ProxyError::kBadAddress:
      return "bad_address";
    case ProxyError::kBadTlv:
      return "bad_tlv";
    case ProxyError::kBadChecksum:
      return "bad_checksum";
    case ProxyError::kBadV1:
      return "bad_v1";
  }
  return "unknown";
}

bool ProxyHeaderParser::fail(ProxyError e, std::string_view message) {
  status_ = ParseStatus::kError;
  error_ = e;
  error_message_ = message;
  return false;
}

FeedResult ProxyHeaderParser::feed(std::span<const uint8_t> data) {
  if (status_ != ParseStatus::kNeedMore) return {status_, 0};
  size_t i = 0;
  while (i < data.size()) {
    if (total_ == 0) {
      // Until the length is known, one byte at a time: each is checked as it
      // arrives and nothing after the header is ever taken.
      buf_.push_back(data[i++]);
      if (!checkPrefix()) break;
      const bool v2 = buf_[0] == proxy::kV2Signature[0];
      if (v2 && buf_.size() == proxy::kV2FixedBytes) {
        total_ = proxy::kV2FixedBytes + (size_t{buf_[14]} << 8 | buf_[15]);
        if (total_ > options_.max_bytes) {
          fail(ProxyError::kTooLarge, "PROXY v2 header larger than the limit");
          break;
        }
        if (total_ == buf_.size()) {
          finishV2();
          break;
        }
      } else if (!v2 && buf_.back() == '\n') {
        finishV1();
        break;
      }
    } else {
      const size_t take = std::min(total_ - buf_.size(), data.size() - i);
      buf_.insert(buf_.end(), data.begin() + static_cast<std::ptrdiff_t>(i),
                  data.begin() + static_cast<std::ptrdiff_t>(i + take));
      i += take;
      if (buf_.size() == total_) {
        finishV2();
        break;
      }
    }
  }
  return {status_, i};
}

// Checks the newest byte of a header whose length is not known yet.
bool ProxyHeaderParser::checkPrefix() {
  const size_t n = buf_.size();
  const uint8_t b = buf_.back();
  if (buf_[0] == proxy::kV2Signature[0]) {
    if (n <= proxy::kV2Signature.size()) {
      if (b == proxy::kV2Signature[n - 1]) return true;
      return fail(ProxyError::kNotProxy, "not a PROXY protocol header");
    }
    if (n == 13) {
      if (b >> 4 != proxy::kV2Version)
        return fail(ProxyError::kBadVersion, "PROXY version is not 2");
      if ((b & 0x0F) > proxy::kCommandProxy) {
        return fail(ProxyError::kBadCommand, "PROXY v2 command is neither LOCAL nor PROXY");
      }
    }
    if (n == 14 && ((b >> 4) > proxy::kFamilyUnix || (b & 0x0F) > proxy::kTransportDgram)) {
      return fail(ProxyError::kBadFamily, "PROXY v2 address family or transport is unassigned");
    }
    return true;
  }
  if (n <= proxy::kV1Prefix.size()) {
    if (b != static_cast<uint8_t>(proxy::kV1Prefix[n - 1])) {
      return fail(ProxyError::kNotProxy, "not a PROXY protocol header");
    }
    if (n == proxy::kV1Prefix.size() && !options_.accept_v1) {
      return fail(ProxyError::kV1Disabled, "PROXY v1 header where only v2 is accepted");
    }
    return true;
  }
  // §2.1: US-ASCII up to a CRLF found within 107 bytes; a lone CR or LF is
  // an error.
  const uint8_t prev = buf_[n - 2];
  if (prev == '\r' && b != '\n') return fail(ProxyError::kBadV1, "CR without LF in PROXY v1 line");
  if (b == '\n' && prev != '\r') return fail(ProxyError::kBadV1, "LF without CR in PROXY v1 line");
  if (b != '\r' && b != '\n' && (b < 0x20 || b > 0x7E)) {
    return fail(ProxyError::kBadV1, "non-ASCII byte in PROXY v1 line");
  }
  if (b != '\n' && n >= proxy::kV1MaxBytes) {
    return fail(ProxyError::kBadV1, "PROXY v1 line longer than 107 bytes");
  }
  return true;
}

void ProxyHeaderParser::finishV2() {
  header_.version = 2;
  header_.command = static_cast<ProxyCommand>(buf_[12] & 0x0F);
  header_.family = static_cast<ProxyFamily>(buf_[13] >> 4);
  header_.transport = static_cast<ProxyTransport>(buf_[13] & 0x0F);
  header_.bytes = buf_.size();
  const auto block = std::span<const uint8_t>(buf_).subspan(proxy::kV2FixedBytes);
  size_t used = 0;
  if (!parseV2Addresses(block, used)) return;
  if (!parseTlvs(block.subspan(used))) return;
  status_ = ParseStatus::kDone;
}

bool ProxyHeaderParser::parseV2Addresses(std::span<const uint8_t> block, size_t& used) {
  ByteReader r(block);
  switch (header_.family) {
    case ProxyFamily::kUnspec:
      // §2.2: no address; whatever follows is TLVs.
      used = 0;
      return true;
    case ProxyFamily::kInet: {
      std::span<const uint8_t> src;
      std::span<const uint8_t> dst;
      uint16_t sport = 0;
      uint16_t dport = 0;
      if (!(r.bytes(4, src) && r.bytes(4, dst) && r.u16(sport) && r.u16(dport))) {
        return fail(ProxyError::kBadAddress, "PROXY v2 IPv4 address block is too short");
      }
      header_.source = IpEndpoint::ipv4({src[0], src[1], src[2], src[3]}, sport);
      header_.destination = IpEndpoint::ipv4({dst[0], dst[1], dst[2], dst[3]}, dport);
      used = proxy::kInetAddressBytes;
      return true;
    }
    case ProxyFamily::kInet6: {
      std::span<const uint8_t> src;
      std::span<const uint8_t> dst;
      uint16_t sport = 0;
      uint16_t dport = 0;
      if (!(r.bytes(16, src) && r.bytes(16, dst) && r.u16(sport) && r.u16(dport))) {
        return fail(ProxyError::kBadAddress, "PROXY v2 IPv6 address block is too short");
      }
      std::array<uint8_t, 16> a{};
      std::copy(src.begin(), src.end(), a.begin());
      header_.source = IpEndpoint::ipv6(a, sport);
      std::copy(dst.begin(), dst.end(), a.begin());
      header_.destination = IpEndpoint::ipv6(a, dport);
      used = proxy::kInet6AddressBytes;
      return true;
    }
    case ProxyFamily::kUnix: {
      std::span<const uint8_t> src;
      std::span<const uint8_t> dst;
      if (!(r.bytes(proxy::kUnixPathBytes, src) && r.bytes(proxy::kUnixPathBytes, dst))) {
        return fail(ProxyError::kBadAddress, "PROXY v2 UNIX address block is too short");
      }
      header_.unix_source = unixPath(src);
      header_.unix_destination = unixPath(dst);
      used = proxy::kUnixAddressBytes;
      return true;
    }
  }
  return fail(ProxyError::kBadFamily, "PROXY v2 address family is unassigned");
}

bool ProxyHeaderParser::parseTlvs(std::span<const uint8_t> tlvs) {
  ByteReader r(tlvs);
  size_t crc_offset = 0;  // of the CRC32C value within buf_
  while (!r.empty()) {
    const size_t offset = buf_.size() - r.remaining();
    uint8_t type = 0;
    std::span<const uint8_t> value;
    r.u8(type);
    r.vec(2, value);
    if (!r.ok()) return fail(ProxyError::kBadTlv, "PROXY v2 TLVs do not fill the header");
    if (type == proxy::kTlvCrc32c) {
      if (value.size() != proxy::kCrc32cBytes || crc_offset != 0) {
        return fail(ProxyError::kBadTlv, "PROXY v2 CRC32C TLV is malformed or repeated");
      }
      crc_offset = offset + proxy::kTlvHeaderBytes;
    }
    header_.tlvs.push_back(
        {type, std::string(reinterpret_cast<const char*>(value.data()), value.size())});
  }
  if (crc_offset != 0) {
    // §2.2.3: the checksum covers the whole header with its own field zeroed.
    const uint32_t want = uint32_t{buf_[crc_offset]} << 24 | uint32_t{buf_[crc_offset + 1]} << 16 |
                          uint32_t{buf_[crc_offset + 2]} << 8 | uint32_t{buf_[crc_offset + 3]};
    std::vector<uint8_t> zeroed = buf_;
    std::fill_n(zeroed.begin() + static_cast<std::ptrdiff_t>(crc_offset), proxy::kCrc32cBytes, 0);
    if (crc32c(zeroed) != want) return fail(ProxyError::kBadChecksum, "PROXY v2 CRC32C mismatch");
  }
  return true;
}

void ProxyHeaderParser::finishV1() {
  header_.version = 1;
  header_.command = ProxyCommand::kProxy;
  header_.bytes = buf_.size();
  // "PROXY " then single-space separated fields, then CRLF.
  const std::string_view line(reinterpret_cast<const char*>(buf_.data()) + proxy::kV1Prefix.size(),
                              buf_.size() - proxy::kV1Prefix.size() - 2);
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    const size_t space = line.find(' ', start);
    fields.push_back(line.substr(start, space - start));
    if (space == std::string_view::npos) break;
    start = space + 1;
  }
  // §2.1: for UNKNOWN the receiver ignores everything up to the CRLF.
  if (fields[0] == "UNKNOWN") {
    header_.family = ProxyFamily::kUnspec;
    status_ = ParseStatus::kDone;
    return;
  }
  const bool v6 = fields[0] == "TCP6";
  if (!v6 && fields[0] != "TCP4") {
    fail(ProxyError::kBadV1, "PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN");
    return;
  }
  if (fields.size() != 5) {
    fail(ProxyError::kBadV1, "PROXY v1 line does not have exactly five fields");
    return;
  }
  IpEndpoint src;
  IpEndpoint dst;
  if (!parseV1Address(fields[1], v6, src) || !parseV1Address(fields[2], v6, dst) ||
      !parseV1Port(fields[3], src.port) || !parseV1Port(fields[4], dst.port)) {
    fail(ProxyError::kBadAddress, "PROXY v1 address or port is malformed");
    return;
  }
  header_.family = v6 ? ProxyFamily::kInet6 : ProxyFamily::kInet;
  header_.transport = ProxyTransport::kStream;
  header_.source = src;
  header_.destination = dst;
  status_ = ParseStatus::kDone;
}

}  // namespace plfm::net
