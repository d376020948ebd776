// TLS wire constants the ClientHello parser needs, with the section of the
// spec that defines each, and the limits the ingress applies to what it reads
// before it has picked a backend.
#pragma once

#include <cstddef>
#include <cstdint>

namespace plfm::net::tls {

// RFC 8446 §5.1: TLSPlaintext = type(1) legacy_record_version(2) length(2).
inline constexpr size_t kRecordHeaderBytes = 5;
// RFC 8446 §5.1: "The length MUST NOT exceed 2^14 bytes."
inline constexpr size_t kMaxRecordPayload = size_t{1} << 14;

// RFC 8446 §5.1 ContentType.
inline constexpr uint8_t kContentChangeCipherSpec = 20;
inline constexpr uint8_t kContentAlert = 21;
inline constexpr uint8_t kContentHandshake = 22;
inline constexpr uint8_t kContentApplicationData = 23;

// RFC 8446 §4: Handshake = msg_type(1) length(3) body.
inline constexpr size_t kHandshakeHeaderBytes = 4;
inline constexpr uint8_t kHandshakeClientHello = 1;

// ProtocolVersion values (RFC 8446 §4.2.1, RFC 5246 appendix E).
inline constexpr uint16_t kSsl30 = 0x0300;
inline constexpr uint16_t kTls10 = 0x0301;
inline constexpr uint16_t kTls11 = 0x0302;
inline constexpr uint16_t kTls12 = 0x0303;
inline constexpr uint16_t kTls13 = 0x0304;

// ExtensionType values.
inline constexpr uint16_t kExtServerName = 0;          // RFC 6066 §3
inline constexpr uint16_t kExtAlpn = 16;               // RFC 7301 §3.1
inline constexpr uint16_t kExtSupportedVersions = 43;  // RFC 8446 §4.2.1
inline constexpr uint8_t kServerNameTypeHostName = 0;  // RFC 6066 §3 NameType

// RFC 8446 §4.1.2: the fixed part of a ClientHello body.
inline constexpr size_t kRandomBytes = 32;
inline constexpr size_t kMaxSessionIdBytes = 32;

// RFC 6066 §3: a HostName is a DNS name; RFC 1035 §2.3.4 bounds it.
inline constexpr size_t kMaxHostNameBytes = 253;
inline constexpr size_t kMaxLabelBytes = 63;

// RFC 8701: GREASE values look like 0x?A?A with both bytes equal.
constexpr bool isGrease(uint16_t v) { return (v & 0x0F0F) == 0x0A0A && (v >> 8) == (v & 0xFF); }

// Our limits. A ClientHello is a few hundred bytes; post-quantum key shares
// bring it to about 2 KiB. Anything near these limits is an attack or a bug,
// and the ingress holds these bytes in memory before it has chosen a backend.
inline constexpr size_t kMaxClientHelloBytes = size_t{16} * 1024;  // handshake message incl. header
inline constexpr size_t kMaxRecords = 64;                          // records carrying it

}  // namespace plfm::net::tls
