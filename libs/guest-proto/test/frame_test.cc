#include "plfm/guest_proto/frame.h"

#include <gtest/gtest.h>

#include <string>

#include "plfm/guest_proto/messages.h"

namespace plfm::guest_proto {
namespace {

std::string header(uint8_t type, uint8_t flags, uint16_t stream, uint32_t length) {
  std::string h;
  h.push_back(static_cast<char>(type));
  h.push_back(static_cast<char>(flags));
  h.push_back(static_cast<char>(stream >> 8));
  h.push_back(static_cast<char>(stream));
  for (int shift = 24; shift >= 0; shift -= 8) h.push_back(static_cast<char>(length >> shift));
  return h;
}

TEST(FrameTest, EncodesHeaderBigEndian) {
  auto frame = encodeFrame(FrameType::kPing, kControlStream, "12345678");
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(*frame, header(0x07, 0, 0, 8) + "12345678");
}

TEST(FrameTest, DecodesByteByByte) {
  std::string stream = encodePing(Ping{42});
  stream += *encode(Log{LogSource::kStderr, 7, "hello\n"});
  stream += encode(Exit{ExitKind::kExited, 3});
  Decoder decoder;
  std::vector<Frame> frames;
  for (char c : stream) {
    decoder.feed(std::string_view(&c, 1));
    auto frame = decoder.next();
    ASSERT_TRUE(frame.has_value()) << frame.error().toString();
    if (*frame) frames.push_back(std::move(**frame));
  }
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].type, FrameType::kPing);
  EXPECT_EQ(decodePing(frames[0].payload)->nonce, 42u);
  EXPECT_EQ(frames[1].stream, kWorkloadStream);
  EXPECT_EQ(decodeLog(frames[1].payload)->data, "hello\n");
  EXPECT_EQ(decodeExit(frames[2].payload)->code, 3);
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(FrameTest, DecodesSeveralFramesFromOneRead) {
  Decoder decoder;
  decoder.feed(encodePing(Ping{1}) + encodePong(Ping{2}) + encodePing(Ping{3}).substr(0, 5));
  auto a = decoder.next();
  auto b = decoder.next();
  auto c = decoder.next();
  ASSERT_TRUE(a && *a && b && *b && c);
  EXPECT_EQ((*b)->type, FrameType::kPong);
  EXPECT_FALSE(c->has_value());
  EXPECT_EQ(decoder.buffered(), 5u);
}

TEST(FrameTest, StatusHasNoPayload) {
  Decoder decoder;
  decoder.feed(encodeStatus());
  auto frame = decoder.next();
  ASSERT_TRUE(frame && *frame);
  EXPECT_EQ((*frame)->type, FrameType::kStatus);
  Decoder with_payload;
  with_payload.feed(header(0x0a, 0, 0, 1) + "x");
  EXPECT_EQ(with_payload.next().error().code, ErrorCode::kOversized);
}

TEST(FrameTest, EmptyPayloadFrame) {
  Decoder decoder;
  decoder.feed(*encode(BootError{""}));
  auto frame = decoder.next();
  ASSERT_TRUE(frame && *frame);
  EXPECT_EQ((*frame)->type, FrameType::kError);
  EXPECT_TRUE((*frame)->payload.empty());
}

TEST(FrameTest, RejectsOversizedBeforeBufferingPayload) {
  Decoder decoder;
  decoder.feed(header(0x02, 0, 0, kMaxPayloadBytes + 1));
  auto frame = decoder.next();
  ASSERT_FALSE(frame.has_value());
  EXPECT_EQ(frame.error().code, ErrorCode::kOversized);
  EXPECT_NE(frame.error().message.find("CONFIG"), std::string::npos);
}

TEST(FrameTest, RejectsPerTypeLimit) {
  Decoder decoder;
  decoder.feed(header(0x04, 0, 1, kLogHeaderBytes + kMaxLogDataBytes + 1));
  auto frame = decoder.next();
  ASSERT_FALSE(frame.has_value());
  EXPECT_EQ(frame.error().code, ErrorCode::kOversized);
  Decoder ping;
  ping.feed(header(0x07, 0, 0, 9));
  EXPECT_EQ(ping.next().error().code, ErrorCode::kOversized);
}

TEST(FrameTest, RejectsUnknownTypeBadFlagsAndWrongStream) {
  struct Case {
    std::string bytes;
    ErrorCode code;
  };
  const Case cases[] = {
      {header(0x00, 0, 0, 0), ErrorCode::kUnknownFrameType},
      {header(0x3f, 0, 0, 0), ErrorCode::kUnknownFrameType},
      {header(0x07, 0x80, 0, 8), ErrorCode::kBadHeader},
      {header(0x04, 0, 0, 12), ErrorCode::kBadHeader},      // LOG on control
      {header(0x01, 0, 1, 0), ErrorCode::kBadHeader},       // HELLO on workload
      {header(0x21, 0, 0x00ff, 0), ErrorCode::kBadHeader},  // exec below the range
      {header(0x21, 0, 0xffff, 0), ErrorCode::kBadHeader},  // exec above the range
  };
  for (const Case& c : cases) {
    Decoder decoder;
    decoder.feed(c.bytes);
    auto frame = decoder.next();
    ASSERT_FALSE(frame.has_value());
    EXPECT_EQ(frame.error().code, c.code) << frame.error().toString();
  }
}

TEST(FrameTest, AcceptsExecFramesOnExecStreams) {
  Decoder decoder;
  decoder.feed(header(0x21, 0, 0x0100, 3) + "abc");
  auto frame = decoder.next();
  ASSERT_TRUE(frame && *frame);
  EXPECT_EQ((*frame)->type, FrameType::kExecData);
  EXPECT_EQ((*frame)->stream, 0x0100);
}

TEST(FrameTest, ErrorIsSticky) {
  Decoder decoder;
  decoder.feed(header(0x3f, 0, 0, 0));
  EXPECT_FALSE(decoder.next().has_value());
  decoder.feed(encodePing(Ping{1}));
  auto again = decoder.next();
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kUnknownFrameType);
  EXPECT_TRUE(decoder.failed());
}

TEST(FrameTest, EncodeFrameRefusesWhatTheDecoderWould) {
  EXPECT_FALSE(encodeFrame(FrameType::kPing, kControlStream, "123456789").has_value());
  EXPECT_FALSE(encodeFrame(FrameType::kLog, kControlStream, std::string(12, 'x')).has_value());
  EXPECT_FALSE(encodeFrame(static_cast<FrameType>(0x40), 0, "").has_value());
}

TEST(FrameTest, LongStreamDoesNotGrowBuffer) {
  Decoder decoder;
  const std::string ping = encodePing(Ping{9});
  for (int i = 0; i < 10000; ++i) {
    decoder.feed(ping + ping.substr(0, 3));
    auto a = decoder.next();
    ASSERT_TRUE(a && *a);
    decoder.feed(ping.substr(3));
    auto b = decoder.next();
    ASSERT_TRUE(b && *b);
  }
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(FrameTest, Names) {
  EXPECT_EQ(frameTypeName(FrameType::kConfig), "CONFIG");
  EXPECT_EQ(frameTypeName(static_cast<FrameType>(0x3f)), "0x3f");
  EXPECT_EQ(codeName(ErrorCode::kOversized), "guest_proto.oversized");
}

}  // namespace
}  // namespace plfm::guest_proto
