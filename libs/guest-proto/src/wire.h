// Big-endian integer, TLV and payload-size helpers shared by the codecs
// (frame.cc, messages.cc, exec.cc, volume_ops.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/guest_proto/constants.h"
#include "plfm/guest_proto/error.h"

namespace plfm::guest_proto::internal {

inline void putU8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
inline void putU16(std::string& out, uint16_t v) {
  putU8(out, static_cast<uint8_t>(v >> 8));
  putU8(out, static_cast<uint8_t>(v));
}
inline void putU32(std::string& out, uint32_t v) {
  putU16(out, static_cast<uint16_t>(v >> 16));
  putU16(out, static_cast<uint16_t>(v));
}
inline void putU64(std::string& out, uint64_t v) {
  putU32(out, static_cast<uint32_t>(v >> 32));
  putU32(out, static_cast<uint32_t>(v));
}

inline uint8_t getU8(std::string_view in, size_t at) { return static_cast<uint8_t>(in[at]); }
inline uint16_t getU16(std::string_view in, size_t at) {
  return static_cast<uint16_t>((getU8(in, at) << 8) | getU8(in, at + 1));
}
inline uint32_t getU32(std::string_view in, size_t at) {
  return (uint32_t{getU16(in, at)} << 16) | getU16(in, at + 2);
}
inline uint64_t getU64(std::string_view in, size_t at) {
  return (uint64_t{getU32(in, at)} << 32) | getU32(in, at + 4);
}

inline void putTlv(std::string& out, uint16_t tag, std::string_view value) {
  putU16(out, tag);
  putU32(out, static_cast<uint32_t>(value.size()));
  out.append(value);
}
inline void putTlvU32(std::string& out, uint16_t tag, uint32_t v) {
  std::string value;
  putU32(value, v);
  putTlv(out, tag, value);
}
inline void putTlvU64(std::string& out, uint16_t tag, uint64_t v) {
  std::string value;
  putU64(value, v);
  putTlv(out, tag, value);
}
inline void putTlvU8(std::string& out, uint16_t tag, uint8_t v) {
  putTlv(out, tag, std::string_view(reinterpret_cast<const char*>(&v), 1));
}

inline bool hasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// A field of a TLV payload (host-channel.md §TLV payloads); aliases the payload.
struct Field {
  uint16_t tag = 0;
  std::string_view value;
};

// Splits a TLV payload; `what` names the message in errors.
inline Result<std::vector<Field>> splitTlv(std::string_view payload, std::string_view what) {
  std::vector<Field> fields;
  size_t at = 0;
  while (at < payload.size()) {
    if (payload.size() - at < kTlvHeaderBytes) {
      return makeError(ErrorCode::kMalformed,
                       std::string(what) + ": truncated field header at " + std::to_string(at));
    }
    const uint16_t tag = getU16(payload, at);
    const uint32_t length = getU32(payload, at + 2);
    at += kTlvHeaderBytes;
    if (length > payload.size() - at) {
      return makeError(ErrorCode::kMalformed, std::string(what) + ": field " + std::to_string(tag) +
                                                  " length " + std::to_string(length) +
                                                  " runs past the end");
    }
    fields.push_back(Field{tag, payload.substr(at, length)});
    at += length;
  }
  return fields;
}

// A fixed-size payload of exactly `size` bytes; `what` names the message.
inline Result<void> exactSize(std::string_view what, std::string_view payload, size_t size) {
  if (payload.size() != size) {
    return makeError(ErrorCode::kMalformed, std::string(what) + ": payload is " +
                                                std::to_string(payload.size()) +
                                                " bytes; expected " + std::to_string(size));
  }
  return {};
}

}  // namespace plfm::guest_proto::internal
