// PROXY protocol wire constants (haproxy doc/proxy-protocol.txt, version 2
// section 2.2 and the version 1 text format of section 2.1), and our limits.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace plfm::net::proxy {

// §2.2: the 12-byte signature that starts every v2 header. It contains a NUL
// and CRLFs so that it cannot be mistaken for any text protocol or for TLS.
inline constexpr std::array<uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
// §2.2: signature, ver_cmd, fam, len(2).
inline constexpr size_t kV2FixedBytes = 16;
inline constexpr uint8_t kV2Version = 0x2;  // high nibble of byte 13

// §2.2: low nibble of byte 13.
inline constexpr uint8_t kCommandLocal = 0x0;
inline constexpr uint8_t kCommandProxy = 0x1;

// §2.2: byte 14, high nibble (family) and low nibble (transport).
inline constexpr uint8_t kFamilyUnspec = 0x0;
inline constexpr uint8_t kFamilyInet = 0x1;
inline constexpr uint8_t kFamilyInet6 = 0x2;
inline constexpr uint8_t kFamilyUnix = 0x3;
inline constexpr uint8_t kTransportUnspec = 0x0;
inline constexpr uint8_t kTransportStream = 0x1;
inline constexpr uint8_t kTransportDgram = 0x2;

// §2.2: address block sizes (two addresses, then two ports for INET/INET6).
inline constexpr size_t kInetAddressBytes = 12;
inline constexpr size_t kInet6AddressBytes = 36;
inline constexpr size_t kUnixAddressBytes = 216;
inline constexpr size_t kUnixPathBytes = 108;

// §2.2: TLV = type(1) length(2) value; registered types.
inline constexpr size_t kTlvHeaderBytes = 3;
inline constexpr uint8_t kTlvAlpn = 0x01;
inline constexpr uint8_t kTlvAuthority = 0x02;
inline constexpr uint8_t kTlvCrc32c = 0x03;  // §2.2.3, value is 4 bytes
inline constexpr uint8_t kTlvNoop = 0x04;
inline constexpr uint8_t kTlvUniqueId = 0x05;
inline constexpr uint8_t kTlvSsl = 0x20;
inline constexpr uint8_t kTlvNetns = 0x30;
inline constexpr size_t kCrc32cBytes = 4;

// §2.1: version 1 is one text line starting "PROXY " and ending in CRLF,
// at most 107 bytes including the CRLF.
inline constexpr std::string_view kV1Prefix = "PROXY ";
inline constexpr size_t kV1MaxBytes = 107;

// Our limit on a whole v2 header. The format allows 16 + 65535 bytes; real
// load balancers send well under 1 KiB (addresses plus a few TLVs), and the
// ingress buffers the header before it can route.
inline constexpr size_t kMaxHeaderBytes = 4096;

}  // namespace plfm::net::proxy
