// host-channel.md §Volume operations: each frame round-trips, and a payload
// that breaks the rules (bad serial, wrong size, nonzero reserved bytes,
// unknown thaw kind, empty failure message) is refused.
#include <gtest/gtest.h>

#include "one_frame.h"
#include "plfm/guest_proto/guest_proto.h"

namespace plfm::guest_proto {
namespace {

TEST(VolumeOpsTest, ResizeAndFreezeRoundTripWithTheirSerial) {
  auto resize = encode(ResizeVolume{7, 1 << 26, "vol-15"});
  ASSERT_TRUE(resize.has_value());
  Frame f = testing::oneFrame(*resize);
  EXPECT_EQ(f.type, FrameType::kResizeVolume);
  EXPECT_EQ(f.stream, kControlStream);
  EXPECT_EQ(*decodeResizeVolume(f.payload), (ResizeVolume{7, 1 << 26, "vol-15"}));
  EXPECT_FALSE(encode(ResizeVolume{7, 0, "vol-1"}).has_value());

  auto freeze = encode(Freeze{9, "20490012345678"});
  ASSERT_TRUE(freeze.has_value());
  f = testing::oneFrame(*freeze);
  EXPECT_EQ(f.type, FrameType::kFreeze);
  EXPECT_EQ(*decodeFreeze(f.payload), (Freeze{9, "20490012345678"}));
}

TEST(VolumeOpsTest, ASerialThatNamesNoVolumeDiskIsRefusedBothWays) {
  for (const char* bad : {"", "vol-16", "vol-07", "../vda", "vda", "123456789012345678901"}) {
    EXPECT_FALSE(encode(ResizeVolume{1, 4096, bad}).has_value()) << bad;
    EXPECT_FALSE(encode(Freeze{1, bad}).has_value()) << bad;
    std::string payload("\0\0\0\1", 4);
    payload += bad;
    EXPECT_FALSE(decodeFreeze(payload).has_value()) << bad;
    std::string resize("\0\0\0\1\0\0\0\0\0\0\0\0\0\0\x10\0", 16);
    resize += bad;
    EXPECT_FALSE(decodeResizeVolume(resize).has_value()) << bad;
  }
  EXPECT_EQ(decodeFreeze("ab").error().code, ErrorCode::kMalformed);
}

TEST(VolumeOpsTest, AnswersRoundTripAndAreCheckedExactly) {
  Frame f = testing::oneFrame(encode(VolumeResized{3, uint64_t{1} << 40}));
  EXPECT_EQ(f.type, FrameType::kVolumeResized);
  EXPECT_EQ(*decodeVolumeResized(f.payload), (VolumeResized{3, uint64_t{1} << 40}));
  std::string reserved = f.payload;
  reserved[5] = 1;
  EXPECT_EQ(decodeVolumeResized(reserved).error().code, ErrorCode::kInvalidValue);
  EXPECT_FALSE(decodeVolumeResized(f.payload.substr(1)).has_value());

  f = testing::oneFrame(encodeFrozen(VolumeOpId{4}));
  EXPECT_EQ(f.type, FrameType::kFrozen);
  EXPECT_EQ(decodeVolumeOpId(f.payload)->id, 4u);
  f = testing::oneFrame(encodeThaw(VolumeOpId{4}));
  EXPECT_EQ(f.type, FrameType::kThaw);
  EXPECT_FALSE(decodeVolumeOpId("12345").has_value());

  f = testing::oneFrame(encode(Thawed{4, ThawKind::kOnThaw}));
  EXPECT_EQ(f.type, FrameType::kThawed);
  EXPECT_EQ(*decodeThawed(f.payload), (Thawed{4, ThawKind::kOnThaw}));
  std::string kind = f.payload;
  kind[4] = 3;
  EXPECT_EQ(decodeThawed(kind).error().code, ErrorCode::kInvalidValue);
}

TEST(VolumeOpsTest, AFailureNeedsAMessageWithinItsLimit) {
  Frame f = testing::oneFrame(*encode(VolumeFailed{5, "not mounted"}));
  EXPECT_EQ(f.type, FrameType::kVolumeFailed);
  EXPECT_EQ(*decodeVolumeFailed(f.payload), (VolumeFailed{5, "not mounted"}));
  EXPECT_FALSE(encode(VolumeFailed{5, ""}).has_value());
  EXPECT_FALSE(encode(VolumeFailed{5, std::string(kMaxVolumeFailureBytes + 1, 'x')}).has_value());
  EXPECT_FALSE(decodeVolumeFailed(std::string("\0\0\0\5", 4)).has_value());
  EXPECT_FALSE(decodeVolumeFailed(std::string(4 + kMaxVolumeFailureBytes + 1, 'x')).has_value());
}

TEST(VolumeOpsTest, HelloCarriesTheVolumeRevisionAndOlderHellosReadAsZero) {
  Hello h{1, "vt-init", "6.1", 5, kExecRevision, kVolumeRevision};
  Frame f = testing::oneFrame(*encode(h));
  EXPECT_EQ(decodeHello(f.payload)->volume_revision, kVolumeRevision);
  h.volume_revision = 0;
  f = testing::oneFrame(*encode(h));
  EXPECT_EQ(decodeHello(f.payload)->volume_revision, 0u);
}

TEST(VolumeOpsTest, TheHeaderLimitsRefuseOversizedVolumeFrames) {
  EXPECT_FALSE(checkHeader(static_cast<uint8_t>(FrameType::kFreeze), 0, kControlStream,
                           kVolumeOpHeaderBytes + kMaxVolumeSerialBytes + 1)
                   .has_value());
  EXPECT_FALSE(
      checkHeader(static_cast<uint8_t>(FrameType::kThawed), 0, kWorkloadStream, 8).has_value());
}

}  // namespace
}  // namespace plfm::guest_proto
