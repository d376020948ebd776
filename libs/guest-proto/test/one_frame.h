// Test helper: the single frame that `bytes` encodes, checked to be exactly
// one whole frame.
#pragma once

#include <gtest/gtest.h>

#include <string>

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

}  // namespace plfm::guest_proto::testing
