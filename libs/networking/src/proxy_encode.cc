// Encoding of PROXY protocol v2 headers (haproxy doc/proxy-protocol.txt §2.2).
#include <algorithm>
#include <array>

#include "plfm/core/error.h"
#include "plfm/net/proxy_protocol.h"

namespace plfm::net {
namespace {

// Reflected CRC32C (Castagnoli, polynomial 0x1EDC6F41), one table lookup per
// byte; RFC 4960 appendix B.
constexpr std::array<uint32_t, 256> makeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78U : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = makeCrc32cTable();

void putU16(std::string& out, size_t v) {
  out.push_back(static_cast<char>((v >> 8) & 0xFF));
  out.push_back(static_cast<char>(v & 0xFF));
}

void putAddress(std::string& out, const IpEndpoint& e) {
  out.append(reinterpret_cast<const char*>(e.address.data()), e.v6 ? 16 : 4);
}

void putUnixPath(std::string& out, const std::string& path) {
  std::string padded = path;
  padded.resize(proxy::kUnixPathBytes, '\0');
  out += padded;
}

}  // namespace

uint32_t crc32c(std::span<const uint8_t> data) {
  uint32_t crc = 0xFFFFFFFFU;
  for (uint8_t b : data) crc = kCrc32cTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFU;
}

ProxyHeader ProxyHeader::tcp(const IpEndpoint& source, const IpEndpoint& destination) {
  ProxyHeader h;
  h.command = ProxyCommand::kProxy;
  h.family = source.v6 || destination.v6 ? ProxyFamily::kInet6 : ProxyFamily::kInet;
  h.transport = ProxyTransport::kStream;
  h.source = source;
  h.destination = destination;
  return h;
}

ProxyHeader ProxyHeader::local() {
  ProxyHeader h;
  h.command = ProxyCommand::kLocal;
  return h;
}

std::optional<IpEndpoint> ProxyHeader::clientAddress() const {
  if (command != ProxyCommand::kProxy) return std::nullopt;
  return source;
}

const ProxyTlv* ProxyHeader::findTlv(uint8_t type) const {
  for (const auto& tlv : tlvs) {
    if (tlv.type == type) return &tlv;
  }
  return nullptr;
}

Result<std::string> encodeProxyV2(const ProxyHeader& header, const ProxyEncodeOptions& options) {
  std::string block;
  uint8_t family = proxy::kFamilyUnspec;
  auto transport = static_cast<uint8_t>(header.transport);
  if (header.family == ProxyFamily::kUnix) {
    family = proxy::kFamilyUnix;
    if (header.unix_source.size() > proxy::kUnixPathBytes ||
        header.unix_destination.size() > proxy::kUnixPathBytes) {
      return Error(errc::kInvalidArgument, "PROXY v2 UNIX path longer than 108 bytes");
    }
    putUnixPath(block, header.unix_source);
    putUnixPath(block, header.unix_destination);
  } else if (header.source && header.destination) {
    IpEndpoint src = *header.source;
    IpEndpoint dst = *header.destination;
    if (src.v6 != dst.v6) {
      src = src.toV6();
      dst = dst.toV6();
    }
    family = src.v6 ? proxy::kFamilyInet6 : proxy::kFamilyInet;
    putAddress(block, src);
    putAddress(block, dst);
    putU16(block, src.port);
    putU16(block, dst.port);
  } else if (header.family != ProxyFamily::kUnspec) {
    return Error(errc::kInvalidArgument, "PROXY v2 INET header needs a source and a destination");
  } else {
    transport = proxy::kTransportUnspec;  // §2.2: UNSPEC/UNSPEC carries no address
  }

  size_t crc_offset = 0;  // of the CRC32C value within the address+TLV block
  auto addTlv = [&](uint8_t type, std::string_view value) {
    if (type == proxy::kTlvCrc32c) {
      crc_offset = block.size() + proxy::kTlvHeaderBytes;
      value = std::string_view("\0\0\0\0", proxy::kCrc32cBytes);
    }
    block.push_back(static_cast<char>(type));
    putU16(block, value.size());
    block.append(value);
  };
  for (const auto& tlv : header.tlvs) {
    if (tlv.value.size() > 0xFFFF) {
      return Error(errc::kInvalidArgument, "PROXY v2 TLV value longer than 65535 bytes")
          .with("tlv_type", std::to_string(tlv.type));
    }
    if (tlv.type == proxy::kTlvCrc32c && crc_offset != 0) continue;  // one checksum
    addTlv(tlv.type, tlv.value);
  }
  if (options.crc32c && crc_offset == 0) addTlv(proxy::kTlvCrc32c, {});
  if (block.size() > 0xFFFF) {
    return Error(errc::kInvalidArgument, "PROXY v2 header longer than 65535 bytes")
        .with("bytes", std::to_string(block.size()));
  }

  std::string out(reinterpret_cast<const char*>(proxy::kV2Signature.data()),
                  proxy::kV2Signature.size());
  out.push_back(static_cast<char>(proxy::kV2Version << 4 | static_cast<uint8_t>(header.command)));
  out.push_back(static_cast<char>(family << 4 | transport));
  putU16(out, block.size());
  out += block;
  if (crc_offset != 0) {
    // §2.2.3: computed over the whole header with the field zeroed, then
    // written in network byte order.
    const uint32_t crc =
        crc32c(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(out.data()), out.size()));
    const size_t at = proxy::kV2FixedBytes + crc_offset;
    for (size_t k = 0; k < proxy::kCrc32cBytes; ++k) {
      out[at + k] = static_cast<char>((crc >> (24 - 8 * k)) & 0xFF);
    }
  }
  return out;
}

}  // namespace plfm::net
