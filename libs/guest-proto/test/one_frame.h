// Test helpers: the single frame that `bytes` encodes, checked to be exactly
// one whole frame; big-endian integers and a field's tag-length-value bytes.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "plfm/guest_proto/frame.h"

namespace plfm::guest_proto::testing {

inline Frame oneFrame(const std::string& bytes) {
  Decoder decoder;
  decoder.feed(bytes);
  auto frame = decoder.next();
  EXPECT_TRUE(frame.has_value() && frame->has_value());
  EXPECT_EQ(decoder.buffered(), 0u);
  return frame && *frame ? **frame : Frame{};
}

inline std::string be16(uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }
inline std::string be32(uint32_t v) {
  return be16(static_cast<uint16_t>(v >> 16)) + be16(v & 0xffff);
}
// A field: its tag, its length (32 bits) and its bytes.
inline std::string tlv(uint16_t tag, std::string_view value) {
  return be16(tag) + be32(static_cast<uint32_t>(value.size())) + std::string(value);
}

}  // namespace plfm::guest_proto::testing
