#include "plfm/guest_proto/exec.h"

#include <gtest/gtest.h>

#include <string>

#include "one_frame.h"

#include "plfm/guest_proto/frame.h"

namespace plfm::guest_proto {
namespace {

constexpr uint16_t kStream = 0x0123;

using testing::oneFrame;

template <class T, class Decode>
void expectRoundTrip(const T& message, FrameType type, Decode decode) {
  auto bytes = encode(message, kStream);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().toString();
  const Frame f = oneFrame(*bytes);
  EXPECT_EQ(f.type, type);
  EXPECT_EQ(f.stream, kStream);
  auto back = decode(f.payload);
  ASSERT_TRUE(back.has_value()) << back.error().toString();
  EXPECT_EQ(*back, message);
}

using testing::be16;
using testing::be32;
using testing::tlv;

TEST(ExecTest, OpenRoundTrips) {
  ExecOpen minimal;
  minimal.argv = {"true"};
  expectRoundTrip(minimal, FrameType::kExecOpen, decodeExecOpen);

  ExecOpen full;
  full.argv = {"/bin/sh", "-c", "", "x y"};
  full.env = {"A=b=c", "EMPTY="};
  full.user = "app";
  full.workdir = "/srv/app";
  full.tty = true;
  full.rows = 1;
  full.cols = 65535;
  full.window = kMaxExecWindow;
  full.timeout_ms = 1;
  expectRoundTrip(full, FrameType::kExecOpen, decodeExecOpen);
}

TEST(ExecTest, OpenOmitsDefaults) {
  ExecOpen o;
  o.argv = {"x"};
  auto bytes = encode(o, kStream);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_EQ(oneFrame(*bytes).payload, tlv(1, "x"));
}

TEST(ExecTest, OpenRefusesInvalidRequests) {
  struct Case {
    std::string payload;
    ErrorCode code;
  };
  const std::string argv = tlv(1, "sh");
  const Case cases[] = {
      {"", ErrorCode::kMissingField},
      {tlv(2, "A=b"), ErrorCode::kMissingField},
      {tlv(1, ""), ErrorCode::kInvalidValue},
      {tlv(1, std::string("a\0b", 3)), ErrorCode::kInvalidValue},
      {argv + tlv(2, "NOEQUALS"), ErrorCode::kInvalidValue},
      {argv + tlv(2, "=v"), ErrorCode::kInvalidValue},
      {argv + tlv(3, ""), ErrorCode::kInvalidValue},
      {argv + tlv(3, std::string(257, 'u')), ErrorCode::kInvalidValue},
      {argv + tlv(4, "relative"), ErrorCode::kInvalidValue},
      {argv + tlv(5, "\x02"), ErrorCode::kInvalidValue},
      {argv + tlv(5, std::string("\0\0", 2)), ErrorCode::kInvalidValue},
      {argv + tlv(6, be16(30)), ErrorCode::kInvalidValue},  // rows without tty
      {argv + tlv(5, "\x01") + tlv(6, be16(0)), ErrorCode::kInvalidValue},
      {argv + tlv(5, "\x01") + tlv(7, be32(80)), ErrorCode::kInvalidValue},
      {argv + tlv(8, be32(1024)), ErrorCode::kInvalidValue},
      {argv + tlv(8, be32(kMaxExecWindow + 1)), ErrorCode::kInvalidValue},
      {argv + tlv(9, be16(1)), ErrorCode::kInvalidValue},
      {argv + tlv(4, "/a") + tlv(4, "/b"), ErrorCode::kDuplicateField},
      {argv + tlv(5, "\x01") + tlv(5, "\x01"), ErrorCode::kDuplicateField},
      {argv + tlv(10, ""), ErrorCode::kUnknownField},
      {argv + tlv(0, ""), ErrorCode::kUnknownField},
      {argv + be16(1), ErrorCode::kMalformed},                    // truncated field header
      {argv + be16(1) + be32(10) + "ab", ErrorCode::kMalformed},  // runs past the end
  };
  for (const Case& c : cases) {
    auto open = decodeExecOpen(c.payload);
    ASSERT_FALSE(open.has_value()) << ::testing::PrintToString(c.payload);
    EXPECT_EQ(open.error().code, c.code) << open.error().toString();
    EXPECT_FALSE(open.error().message.empty());
  }
}

TEST(ExecTest, EncodeRefusesWhatDecodeRefuses) {
  ExecOpen o;
  EXPECT_FALSE(encode(o, kStream).has_value());  // no argv
  o.argv = {"x"};
  EXPECT_FALSE(encode(o, kControlStream).has_value());  // not an exec stream
  EXPECT_FALSE(encode(o, 0xffff).has_value());
  o.argv.assign(1, std::string(kMaxExecOpenBytes, 'a'));
  auto big = encode(o, kStream);
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().code, ErrorCode::kOversized);
  EXPECT_FALSE(encode(ExecData{ExecFd::kStdin, ""}, kStream).has_value());
  EXPECT_FALSE(encode(ExecData{ExecFd::kStdout, std::string(kMaxExecDataBytes + 1, 'x')}, kStream)
                   .has_value());
  EXPECT_FALSE(encode(ExecResize{0, 80}, kStream).has_value());
  EXPECT_FALSE(encode(ExecSignal{0}, kStream).has_value());
  EXPECT_FALSE(encode(ExecSignal{65}, kStream).has_value());
  EXPECT_FALSE(encode(ExecExit{ExecExitKind::kExited, 256, ""}, kStream).has_value());
  EXPECT_FALSE(encode(ExecExit{ExecExitKind::kNotStarted, 127, ""}, kStream).has_value());
  EXPECT_FALSE(encode(ExecExit{ExecExitKind::kExited, 0, "why"}, kStream).has_value());
  EXPECT_FALSE(encode(ExecClose{static_cast<ExecCloseKind>(3)}, kStream).has_value());
  EXPECT_FALSE(encode(ExecWindow{0}, kStream).has_value());
  EXPECT_FALSE(encode(ExecWindow{kMaxExecCredit + 1}, kStream).has_value());
}

TEST(ExecTest, DataRoundTripsAndRefusesMalformed) {
  expectRoundTrip(ExecData{ExecFd::kStdin, std::string("\0\x03\xff", 3)}, FrameType::kExecData,
                  decodeExecData);
  expectRoundTrip(ExecData{ExecFd::kStderr, std::string(kMaxExecDataBytes, 'e')},
                  FrameType::kExecData, decodeExecData);
  EXPECT_EQ(decodeExecData("").error().code, ErrorCode::kMalformed);
  EXPECT_EQ(decodeExecData(std::string("\x01\0\0", 3)).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(decodeExecData(std::string("\x01\0\0\0", 4)).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(decodeExecData(std::string("\x03\0\0\0x", 5)).error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecData(std::string("\x01\0\x01\0x", 5)).error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecData(std::string("\x01\0\0\0", 4) + std::string(kMaxExecDataBytes + 1, 'x'))
                .error()
                .code,
            ErrorCode::kOversized);
}

TEST(ExecTest, FixedFramesRoundTripAndRefuseMalformed) {
  expectRoundTrip(ExecResize{50, 132}, FrameType::kExecResize, decodeExecResize);
  expectRoundTrip(ExecSignal{9}, FrameType::kExecSignal, decodeExecSignal);
  expectRoundTrip(ExecSignal{64}, FrameType::kExecSignal, decodeExecSignal);
  expectRoundTrip(ExecClose{ExecCloseKind::kAbort}, FrameType::kExecClose, decodeExecClose);
  expectRoundTrip(ExecWindow{kMaxExecCredit}, FrameType::kExecWindow, decodeExecWindow);

  EXPECT_EQ(decodeExecResize(be16(1)).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(decodeExecResize(be16(0) + be16(1)).error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecResize(be16(1) + be16(0)).error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecSignal(be16(1)).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(decodeExecSignal(be32(0)).error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecSignal(be32(65)).error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecClose("").error().code, ErrorCode::kMalformed);
  EXPECT_EQ(decodeExecClose("\x01\x01").error().code, ErrorCode::kMalformed);
  EXPECT_EQ(decodeExecClose(std::string("\0", 1)).error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecClose("\x03").error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecWindow(be32(0)).error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecWindow(be32(0x80000000)).error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecWindow(be32(1) + "x").error().code, ErrorCode::kMalformed);
}

TEST(ExecTest, ExitRoundTripsAndMapsStatus) {
  const ExecExit cases[] = {
      {ExecExitKind::kExited, 0, ""},
      {ExecExitKind::kExited, 255, ""},
      {ExecExitKind::kSignaled, 15, ""},
      {ExecExitKind::kTimedOut, 9, ""},
      {ExecExitKind::kNotStarted, 127, "exec x: No such file or directory"},
  };
  for (const ExecExit& e : cases) expectRoundTrip(e, FrameType::kExecExit, decodeExecExit);
  EXPECT_EQ((ExecExit{ExecExitKind::kExited, 42, ""}.status()), 42);
  EXPECT_EQ((ExecExit{ExecExitKind::kSignaled, 15, ""}.status()), 143);
  EXPECT_EQ((ExecExit{ExecExitKind::kSignaled, 9, ""}.status()), 137);
  EXPECT_EQ((ExecExit{ExecExitKind::kSignaled, 2, ""}.status()), 130);
  EXPECT_EQ((ExecExit{ExecExitKind::kTimedOut, 9, ""}.status()), 137);
  EXPECT_EQ((ExecExit{ExecExitKind::kNotStarted, 127, "x"}.status()), 127);

  const std::string header = std::string("\x01\0\0\0", 4);
  EXPECT_EQ(decodeExecExit(header).error().code, ErrorCode::kMalformed);
  EXPECT_EQ(decodeExecExit(std::string("\x05\0\0\0", 4) + be32(0)).error().code,
            ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecExit(std::string("\x01\x01\0\0", 4) + be32(0)).error().code,
            ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecExit(header + be32(256)).error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecExit(header + be32(0xffffffff)).error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecExit(header + be32(0) + "msg").error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecExit(std::string("\x02\0\0\0", 4) + be32(0)).error().code,
            ErrorCode::kInvalidValue);
  EXPECT_EQ(decodeExecExit(std::string("\x03\0\0\0", 4) + be32(127)).error().code,
            ErrorCode::kInvalidValue);
  EXPECT_EQ(
      decodeExecExit(std::string("\x03\0\0\0", 4) + be32(1) + std::string(1025, 'm')).error().code,
      ErrorCode::kOversized);
}

TEST(ExecTest, DecoderEnforcesExecFrameLimits) {
  // An EXEC_DATA header longer than 4 + 16 KiB is refused before its payload.
  std::string header = std::string("\x21\0", 2) + be16(kStream) + be32(4 + 16384 + 1);
  Decoder d;
  d.feed(header);
  auto f = d.next();
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, ErrorCode::kOversized);
  // EXEC_WINDOW is exec-stream only.
  Decoder d2;
  d2.feed(std::string("\x26\0", 2) + be16(kWorkloadStream) + be32(4) + be32(1));
  auto g = d2.next();
  ASSERT_FALSE(g.has_value());
  EXPECT_EQ(g.error().code, ErrorCode::kBadHeader);
  EXPECT_EQ(frameTypeName(FrameType::kExecWindow), "EXEC_WINDOW");
}

}  // namespace
}  // namespace plfm::guest_proto
