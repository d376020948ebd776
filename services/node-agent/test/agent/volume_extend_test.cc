// VolumeExtender's decisions (volume-mounts.md §Node side "Extend"): what to
// grow, what an answer means, when to give up.
#include "agent/volume_extend.h"

#include <gtest/gtest.h>

#include "volume_test_ids.h"

namespace plfm::agent {
namespace {
using testing::kVol;

using std::chrono::seconds;

std::vector<WorkloadVolume> volumes(uint64_t size) { return {{kVol, "uploads-0", "/data", size}}; }

TEST(VolumeExtenderTest, GrowsOnlyAboveWhatTheGuestHasAndOneAtATime) {
  VolumeExtender x;
  const auto t0 = std::chrono::steady_clock::time_point{};
  x.started(volumes(32), {32});
  EXPECT_TRUE(x.due(volumes(32), t0).empty());
  EXPECT_TRUE(x.due(volumes(16), t0).empty()) << "never shrinks";
  auto r = x.due(volumes(64), t0);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].index, 0u);
  EXPECT_EQ(r[0].size_bytes, 64u);
  EXPECT_TRUE(x.due(volumes(128), t0).empty()) << "one in flight per volume";
  auto done = x.answered(r[0].id, "");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->volume_id, kVol);
  EXPECT_EQ(done->size_bytes, 64u);
  EXPECT_TRUE(done->error.empty());
  EXPECT_TRUE(x.due(volumes(64), t0).empty());
  EXPECT_EQ(x.due(volumes(128), t0).size(), 1u);
}

TEST(VolumeExtenderTest, AnAnswerToNoRequestIsIgnored) {
  VolumeExtender x;
  x.started(volumes(32), {32});
  EXPECT_FALSE(x.answered(99, ""));
  auto r = x.due(volumes(64), {});
  EXPECT_FALSE(x.answered(r[0].id + 1, ""));
  EXPECT_TRUE(x.answered(r[0].id, ""));
  EXPECT_FALSE(x.answered(r[0].id, "")) << "answered once";
}

TEST(VolumeExtenderTest, AFailedSizeIsNotAskedAgainButALargerOneIs) {
  VolumeExtender x;
  x.started(volumes(32), {32});
  auto r = x.due(volumes(64), {});
  auto done = x.answered(r[0].id, "no");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->error, "no");
  EXPECT_TRUE(x.due(volumes(64), {}).empty());
  EXPECT_EQ(x.due(volumes(96), {}).size(), 1u);
}

TEST(VolumeExtenderTest, AnUnansweredRequestIsGivenUpAfterItsTimeout) {
  VolumeExtender x;
  const auto t0 = std::chrono::steady_clock::time_point{} + seconds(100);
  x.started(volumes(32), {32});
  auto r = x.due(volumes(64), t0);
  EXPECT_TRUE(x.expire(t0 + VolumeExtender::kAnswerTimeout - seconds(1)).empty());
  auto late = x.expire(t0 + VolumeExtender::kAnswerTimeout);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_FALSE(late[0].error.empty());
  EXPECT_FALSE(x.answered(r[0].id, "")) << "a late answer changes nothing";
}

TEST(VolumeExtenderTest, AnAdoptedVmIsResizedOnceToItsFilesSize) {
  VolumeExtender x;  // never started: the agent adopted the VM
  auto r = x.due(volumes(32), {});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].size_bytes, 32u);
}

}  // namespace
}  // namespace plfm::agent
