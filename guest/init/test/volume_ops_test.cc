// vt-init's volume operations (host-channel.md §Volume operations) with fake
// syscalls and a fake clock: what it answers, when it thaws by itself, how
// it waits for a disk to show its new size.
#include "volume_ops.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace plfm::init {
namespace {

namespace gp = guest_proto;

struct World {
  uint64_t now = 1000;
  uint64_t disk = 32 << 20;
  uint64_t fs = 32 << 20;
  std::vector<std::string> calls;
  std::vector<gp::Frame> sent;
  bool freeze_fails = false;

  VolumeOps ops() {
    VolumeSys sys;
    sys.disk_bytes = [this](const std::string&) -> Result<uint64_t> { return disk; };
    sys.grow = [this](const std::string& serial, const std::string& mount) -> Result<uint64_t> {
      calls.push_back("grow " + serial + " " + mount);
      fs = disk;
      return fs;
    };
    sys.freeze = [this](const std::string& mount) -> Result<int> {
      if (freeze_fails) return fail("freeze: Operation not supported");
      calls.push_back("freeze " + mount);
      return 42;
    };
    sys.thaw = [this](int fd) -> Result<void> {
      calls.push_back("thaw " + std::to_string(fd));
      return {};
    };
    return VolumeOps(
        {{"vol-0", "/data", "ext4"}, {"vol-1", "/db", "ext4"}}, std::move(sys),
        [this](const std::string& bytes) {
          gp::Decoder d;
          d.feed(bytes);
          auto f = d.next();
          ASSERT_TRUE(f && *f);
          sent.push_back(**f);
        },
        [this] { return now; });
  }
};

gp::Frame frame(const std::string& bytes) {
  gp::Decoder d;
  d.feed(bytes);
  return **d.next();
}

TEST(VolumeOpsTest, AResizeGrowsTheFilesystemOnceTheDiskShowsItsNewSize) {
  World w;
  VolumeOps ops = w.ops();
  ops.onFrame(frame(*gp::encode(gp::ResizeVolume{3, 64 << 20, "vol-0"})));
  // The capacity change has not reached the driver yet: nothing is grown.
  EXPECT_TRUE(w.sent.empty());
  EXPECT_EQ(ops.nextTimeoutMs(), VolumeOps::kResizePollMs);
  w.disk = 64 << 20;
  w.now += 40;
  ops.onTick();
  ASSERT_EQ(w.sent.size(), 1u);
  EXPECT_EQ(w.sent[0].type, gp::FrameType::kVolumeResized);
  EXPECT_EQ(*gp::decodeVolumeResized(w.sent[0].payload), (gp::VolumeResized{3, 64 << 20}));
  EXPECT_EQ(w.calls, std::vector<std::string>{"grow vol-0 /data"});
  EXPECT_EQ(ops.nextTimeoutMs(), -1);
}

TEST(VolumeOpsTest, ADiskThatNeverGrowsIsAFailureThatLeavesTheVmAlone) {
  World w;
  VolumeOps ops = w.ops();
  ops.onFrame(frame(*gp::encode(gp::ResizeVolume{3, 64 << 20, "vol-0"})));
  w.now += VolumeOps::kResizeWaitMs;
  ops.onTick();
  ASSERT_EQ(w.sent.size(), 1u);
  EXPECT_EQ(w.sent[0].type, gp::FrameType::kVolumeFailed);
  EXPECT_NE(gp::decodeVolumeFailed(w.sent[0].payload)->message.find("not the 67108864"),
            std::string::npos);
  EXPECT_TRUE(w.calls.empty());
}

TEST(VolumeOpsTest, AnUnknownSerialIsAFailureNamingIt) {
  World w;
  VolumeOps ops = w.ops();
  ops.onFrame(frame(*gp::encode(gp::ResizeVolume{1, 4096, "vol-5"})));
  ops.onFrame(frame(*gp::encode(gp::Freeze{2, "vol-5"})));
  ASSERT_EQ(w.sent.size(), 2u);
  for (const auto& f : w.sent) {
    EXPECT_EQ(f.type, gp::FrameType::kVolumeFailed);
    EXPECT_EQ(gp::decodeVolumeFailed(f.payload)->message, "no volume has serial vol-5");
  }
}

TEST(VolumeOpsTest, FreezeThenThawAnswersFrozenAndThawed) {
  World w;
  VolumeOps ops = w.ops();
  ops.onFrame(frame(*gp::encode(gp::Freeze{7, "vol-1"})));
  ASSERT_EQ(w.sent.size(), 1u);
  EXPECT_EQ(w.sent[0].type, gp::FrameType::kFrozen);
  EXPECT_EQ(gp::decodeVolumeOpId(w.sent[0].payload)->id, 7u);
  EXPECT_EQ(ops.nextTimeoutMs(), static_cast<int>(gp::kFreezeLimitMs));
  // A second freeze of the same volume is refused; a resize waits for no one.
  ops.onFrame(frame(*gp::encode(gp::Freeze{8, "vol-1"})));
  EXPECT_EQ(w.sent.back().type, gp::FrameType::kVolumeFailed);
  w.now += 30;
  ops.onFrame(frame(gp::encodeThaw(gp::VolumeOpId{7})));
  EXPECT_EQ(*gp::decodeThawed(w.sent.back().payload), (gp::Thawed{7, gp::ThawKind::kOnThaw}));
  EXPECT_EQ(w.calls, (std::vector<std::string>{"freeze /db", "thaw 42"}));
  EXPECT_EQ(ops.nextTimeoutMs(), -1);
}

TEST(VolumeOpsTest, AFreezeEndsByItselfAtTheLimitAndALateThawSaysSo) {
  World w;
  VolumeOps ops = w.ops();
  ops.onFrame(frame(*gp::encode(gp::Freeze{7, "vol-0"})));
  w.now += gp::kFreezeLimitMs - 1;
  ops.onTick();
  EXPECT_EQ(w.calls.size(), 1u);  // still frozen
  w.now += 1;
  ops.onTick();
  EXPECT_EQ(w.calls, (std::vector<std::string>{"freeze /data", "thaw 42"}));
  ops.onFrame(frame(gp::encodeThaw(gp::VolumeOpId{7})));
  EXPECT_EQ(*gp::decodeThawed(w.sent.back().payload), (gp::Thawed{7, gp::ThawKind::kTimeout}));
  // Once: the id is forgotten after its answer.
  ops.onFrame(frame(gp::encodeThaw(gp::VolumeOpId{7})));
  EXPECT_EQ(w.sent.back().type, gp::FrameType::kVolumeFailed);
  EXPECT_EQ(w.calls.size(), 2u);
}

TEST(VolumeOpsTest, AFailedFreezeIsReportedAndNothingIsHeld) {
  World w;
  w.freeze_fails = true;
  VolumeOps ops = w.ops();
  ops.onFrame(frame(*gp::encode(gp::Freeze{7, "vol-0"})));
  EXPECT_EQ(w.sent.back().type, gp::FrameType::kVolumeFailed);
  EXPECT_EQ(ops.nextTimeoutMs(), -1);
}

TEST(VolumeOpsTest, ShutdownThawsEveryFrozenVolume) {
  World w;
  VolumeOps ops = w.ops();
  ops.onFrame(frame(*gp::encode(gp::Freeze{1, "vol-0"})));
  ops.onFrame(frame(*gp::encode(gp::Freeze{2, "vol-1"})));
  ops.thawAll();
  EXPECT_EQ(w.calls,
            (std::vector<std::string>{"freeze /data", "freeze /db", "thaw 42", "thaw 42"}));
  EXPECT_EQ(ops.nextTimeoutMs(), -1);
}

TEST(FreezeTableTest, RemembersOnlyTheLastExpiries) {
  FreezeTable t;
  for (uint32_t id = 0; id < FreezeTable::kRememberedExpiries + 4; ++id) {
    t.add({id, "vol-" + std::to_string(id % 10), -1, 5});
  }
  EXPECT_EQ(t.expire(5).size(), FreezeTable::kRememberedExpiries + 4);
  bool expired = false;
  EXPECT_FALSE(t.take(0, expired).has_value());
  EXPECT_FALSE(expired);
  EXPECT_FALSE(t.take(FreezeTable::kRememberedExpiries + 3, expired).has_value());
  EXPECT_TRUE(expired);
}

}  // namespace
}  // namespace plfm::init
