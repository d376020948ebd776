// restic 0.14's --json output (captured from real runs), and output that is
// not what it should be: wrong types, nulls, garbage.
#include "agent/restic_output.h"

#include <gtest/gtest.h>

namespace plfm::agent {
namespace {

TEST(ResticOutput, TheBackupSummaryLineGivesTheShortIdAndBytesAdded) {
  const std::string out =
      R"({"message_type":"status","percent_done":0,"total_files":1,"bytes_done":3250286})"
      "\n"
      R"({"message_type":"summary","files_new":1,"data_blobs":5,"data_added":5000561,)"
      R"("total_bytes_processed":5000000,"total_duration":0.27,"snapshot_id":"ec4385d1"})"
      "\n";
  const auto s = parseBackupSummary(out);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->short_id, "ec4385d1");
  EXPECT_EQ(s->data_added, 5000561u);
  EXPECT_FALSE(parseBackupSummary(""));
  EXPECT_FALSE(parseBackupSummary("Fatal: not json\n{\"message_type\":\"status\"}"));
  const auto odd =
      parseBackupSummary(R"({"message_type":"summary","data_added":"9","snapshot_id":7})");
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->short_id, "");
  EXPECT_EQ(odd->data_added, 0u);
  EXPECT_EQ(parseBackupSummary(R"({"message_type":"summary","data_added":-5})")->data_added, 0u);
}

TEST(ResticOutput, SnapshotsGiveTheFullIdOfAShortOne) {
  const std::string out =
      R"([{"time":"2026-12-06T14:45:45Z","paths":["/snap_a.ext4"],"hostname":"plfm",)"
      R"("tags":["plfm-volume=vol_x","plfm-snapshot=snap_a"],)"
      R"("id":"ec4385d16babc7b7acc425a052949ce219cd7dc44267588299b83c26a3a4ae73",)"
      R"("short_id":"ec4385d1"}])";
  EXPECT_EQ(fullSnapshotId(out, "ec4385d1"),
            "ec4385d16babc7b7acc425a052949ce219cd7dc44267588299b83c26a3a4ae73");
  EXPECT_EQ(fullSnapshotId(out, "00000000"), "");
  EXPECT_EQ(fullSnapshotId(out, ""), "");
  EXPECT_EQ(fullSnapshotId("{}", "ec4385d1"), "");
  EXPECT_EQ(fullSnapshotId(R"([1,{"short_id":5},{"short_id":"ec4385d1","id":[]}])", "ec4385d1"),
            "");
}

TEST(ResticOutput, ForgetGivesTheTagsOfWhatItRemoved) {
  const std::string out =
      R"([{"tags":null,"host":"","paths":null,"keep":[{"tags":["plfm-snapshot=snap_c"]}],)"
      R"("remove":[{"tags":["plfm-volume=vol_x","plfm-snapshot=snap_b"],"id":"93"},)"
      R"({"tags":["plfm-volume=vol_x","plfm-snapshot=snap_a"]}],"reasons":[]}])";
  auto r = removedSnapshotTags(out);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0], (std::vector<std::string>{"plfm-volume=vol_x", "plfm-snapshot=snap_b"}));
  EXPECT_EQ((*r)[1][1], "plfm-snapshot=snap_a");
  EXPECT_TRUE(removedSnapshotTags("")->empty());
  EXPECT_TRUE(removedSnapshotTags(R"([{"keep":[],"remove":null}])")->empty());
  auto odd = removedSnapshotTags(R"([5,{"remove":[3,{"tags":[1,"x"]},{"tags":"y"}]}])");
  ASSERT_TRUE(odd);
  ASSERT_EQ(odd->size(), 2u);
  EXPECT_EQ((*odd)[0], std::vector<std::string>{"x"});
  EXPECT_TRUE((*odd)[1].empty());
  EXPECT_FALSE(removedSnapshotTags("Fatal: repository is already locked"));
}

}  // namespace
}  // namespace plfm::agent
