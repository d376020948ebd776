// The volume store with the real mkfs.ext4 in a temp dir, and the edge
// parsing of WorkloadSpec.volumes and NodePlan.volumes.
#include "agent/volume_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "agent/workload_check.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "volume_test_ids.h"

namespace plfm::agent {
namespace {
using testing::kMiB;
using testing::kVol;
using testing::kVol2;
namespace fs = std::filesystem;
using nlohmann::json;

WorkloadVolume volume(const char* id, const char* name, const char* mount = "/data") {
  return WorkloadVolume{id, name, mount, 16 * kMiB};
}

// dumpe2fs's "Block count" * "Block size": the filesystem's own size.
uint64_t filesystemBytes(const std::string& path, const std::string& scratch) {
  SpawnOptions so;
  so.stdout_path = scratch + "/dumpe2fs.out";
  so.stderr_path = "/dev/null";
  if (!runChecked({"dumpe2fs", "-h", path}, so)) return 0;
  std::ifstream in(so.stdout_path);
  std::string line;
  uint64_t blocks = 0;
  uint64_t block_size = 0;
  while (std::getline(in, line)) {
    if (line.starts_with("Block count:")) blocks = std::stoull(line.substr(12));
    if (line.starts_with("Block size:")) block_size = std::stoull(line.substr(11));
  }
  return blocks * block_size;
}

TEST(VolumeStore, CreatesASparseFormattedFileOwnedByTheAgentOnly) {
  plfm::testing::TempDir tmp;
  VolumeStore store(tmp.path() + "/volumes");
  ASSERT_TRUE(store.open());
  auto size = store.ensure(kVol, 64 * kMiB);
  ASSERT_TRUE(size) << size.error().toString();
  EXPECT_EQ(*size, 64 * kMiB);
  const std::string path = store.pathFor(kVol);
  EXPECT_EQ(path, tmp.path() + "/volumes/" + kVol + ".ext4");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 64 * kMiB);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 16 * kMiB) << "not sparse";
  EXPECT_EQ(filesystemBytes(path, tmp.path()), 64 * kMiB);
  EXPECT_EQ(store.size(kVol), 64 * kMiB);
  EXPECT_FALSE(store.size(kVol2));
  EXPECT_GT(store.capacityBytes(), 0u);
}

TEST(VolumeStore, GrowsTheFileButNeverShrinksItOrReformats) {
  plfm::testing::TempDir tmp;
  VolumeStore store(tmp.path() + "/volumes");
  ASSERT_TRUE(store.open());
  ASSERT_TRUE(store.ensure(kVol, 32 * kMiB));
  const std::string path = store.pathFor(kVol);
  // A marker past the superblock's first group, to prove no reformat.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(30 * kMiB));
    f << "marker";
  }
  auto grown = store.ensure(kVol, 48 * kMiB);
  ASSERT_TRUE(grown);
  EXPECT_EQ(*grown, 48 * kMiB);
  EXPECT_EQ(store.size(kVol), 48 * kMiB);
  // The filesystem stays as it was: the guest grows it.
  EXPECT_EQ(filesystemBytes(path, tmp.path()), 32 * kMiB);
  auto same = store.ensure(kVol, 16 * kMiB);
  ASSERT_TRUE(same);
  EXPECT_EQ(*same, 48 * kMiB) << "shrunk";
  EXPECT_EQ(store.size(kVol), 48 * kMiB);
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(30 * kMiB));
  std::string marker(6, '\0');
  in.read(marker.data(), 6);
  EXPECT_EQ(marker, "marker");
}

TEST(VolumeStore, AFailedFormatLeavesNoFileAndOpenDropsLeftovers) {
  plfm::testing::TempDir tmp;
  VolumeStore broken(tmp.path() + "/volumes", "false");
  ASSERT_TRUE(broken.open());
  auto r = broken.ensure(kVol, 16 * kMiB);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("formatting the volume"), std::string::npos);
  EXPECT_FALSE(broken.size(kVol));
  EXPECT_FALSE(fs::exists(broken.pathFor(kVol) + ".tmp"));
  std::ofstream(broken.pathFor(kVol2) + ".tmp") << "half made";
  VolumeStore store(tmp.path() + "/volumes");
  ASSERT_TRUE(store.open());
  EXPECT_FALSE(fs::exists(store.pathFor(kVol2) + ".tmp"));
}

TEST(VolumeStore, OneWriterPerVolume) {
  plfm::testing::TempDir tmp;
  VolumeStore store(tmp.path() + "/volumes");
  const std::string a = "inst_01jd000000000000000000000a";
  const std::string b = "inst_01jd000000000000000000000b";
  ASSERT_TRUE(store.claim(a, {volume(kVol, "uploads-0")}));
  ASSERT_TRUE(store.claim(a, {volume(kVol, "uploads-0")}));  // again: fine
  auto r = store.claim(b, {volume(kVol2, "cache-0", "/cache"), volume(kVol, "uploads-0")});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), "agent.volume_in_use");
  EXPECT_EQ(r.error().message(), "volume uploads-0 is in use by instance " + a);
  EXPECT_FALSE(store.holder(kVol2)) << "a refused claim must take nothing";
  store.release(a);
  EXPECT_TRUE(store.claim(b, {volume(kVol, "uploads-0")}));
  EXPECT_EQ(store.holder(kVol), b);
}

TEST(VolumeStore, RemovesOnlyAnUnclaimedVolume) {
  plfm::testing::TempDir tmp;
  VolumeStore store(tmp.path() + "/volumes");
  ASSERT_TRUE(store.open());
  ASSERT_TRUE(store.ensure(kVol, 16 * kMiB));
  const std::string inst = "inst_01jd000000000000000000000a";
  ASSERT_TRUE(store.claim(inst, {volume(kVol, "uploads-0")}));
  auto r = store.remove(kVol);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), "agent.volume_in_use");
  EXPECT_TRUE(store.size(kVol));
  store.release(inst);
  ASSERT_TRUE(store.remove(kVol));
  EXPECT_FALSE(store.size(kVol));
  EXPECT_TRUE(store.remove(kVol)) << "removing an absent volume is done already";
}

json volumeJson() {
  return {
      {"volume_id", kVol}, {"name", "uploads-0"}, {"mount", "/data"}, {"size_bytes", 16 * kMiB}};
}

void expectVolumesRefused(const json& list, std::string_view field) {
  auto r = parseWorkloadVolumes(list);
  ASSERT_FALSE(r) << list.dump();
  EXPECT_NE(r.error().message().find(field), std::string::npos) << r.error().message();
}

TEST(WorkloadVolumes, ParseIntoTypedValues) {
  json second = volumeJson();
  second["volume_id"] = kVol2;
  second["name"] = "cache-0";
  second["mount"] = "/var/cache/app";
  second["size_bytes"] = uint64_t{16} << 40;
  auto r = parseWorkloadVolumes(json::array({volumeJson(), second}));
  ASSERT_TRUE(r) << r.error().toString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0], (WorkloadVolume{kVol, "uploads-0", "/data", 16 * kMiB}));
  EXPECT_EQ((*r)[1].size_bytes, uint64_t{16} << 40);
  EXPECT_TRUE(parseWorkloadVolumes(json::array())->empty());
}

TEST(WorkloadVolumes, HostileEntriesAreRefusedWithTheFieldNamed) {
  auto with = [](const char* key, json value) {
    json v = volumeJson();
    v[key] = std::move(value);
    return json::array({v});
  };
  for (const char* id : {"../x", "vol_01jd0000000000000000000001/..",
                         "inst_01jd0000000000000000000000", "vol_01JD0000000000000000000001", ""}) {
    expectVolumesRefused(with("volume_id", id), "volumes[0].volume_id");
  }
  for (const char* name : {"", "Uploads", "a/b", "a,b", "a b"}) {
    expectVolumesRefused(with("name", name), "volumes[0].name");
  }
  expectVolumesRefused(with("name", std::string(64, 'a')), "volumes[0].name");
  for (const char* mount :
       {"data", "/", "/proc", "/sys/x", "/dev", "/run/secrets", "/a/../b", "/a//b", "/data/"}) {
    expectVolumesRefused(with("mount", mount), "volumes[0].mount");
  }
  expectVolumesRefused(with("mount", std::string("/a\0b", 4)), "volumes[0].mount");
  expectVolumesRefused(with("size_bytes", (16 * kMiB) - 1), "volumes[0].size_bytes");
  expectVolumesRefused(with("size_bytes", (uint64_t{16} << 40) + 1), "volumes[0].size_bytes");
  expectVolumesRefused(with("size_bytes", -1), "volumes[0].size_bytes");
  expectVolumesRefused(with("size_bytes", "1G"), "volumes[0].size_bytes");
  expectVolumesRefused(with("volume_id", 5), "volumes[0].volume_id");
  expectVolumesRefused(json::array({volumeJson(), volumeJson()}), "volumes[1].volume_id");
  json other_id = volumeJson();
  other_id["volume_id"] = kVol2;
  expectVolumesRefused(json::array({volumeJson(), other_id}), "volumes[1].mount");
  json many = json::array();
  for (int i = 0; i < 17; ++i) many.push_back(volumeJson());
  expectVolumesRefused(many, "volumes");
  expectVolumesRefused(json::object(), "volumes");
}

TEST(NodeVolumes, ReadyAndDeletingEntriesParse) {
  auto r = parseNodeVolume({{"volume_id", kVol}, {"size_bytes", 32 * kMiB}, {"state", "ready"}});
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(*r, (NodeVolume{kVol, 32 * kMiB, false}));
  r = parseNodeVolume({{"volume_id", kVol}, {"size_bytes", 32 * kMiB}, {"state", "deleting"}});
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->deleting);
  for (const json& bad :
       {json{{"volume_id", "../etc"}, {"size_bytes", 32 * kMiB}, {"state", "ready"}},
        json{{"volume_id", kVol}, {"size_bytes", 1}, {"state", "ready"}},
        json{{"volume_id", kVol}, {"size_bytes", 32 * kMiB}, {"state", "gone"}},
        json{{"volume_id", kVol}, {"size_bytes", 32 * kMiB}}, json("x")}) {
    auto e = parseNodeVolume(bad);
    ASSERT_FALSE(e) << bad.dump();
    EXPECT_NE(e.error().message().find("invalid NodePlan: NodePlan.volumes[]"), std::string::npos)
        << e.error().message();
  }
}

}  // namespace
}  // namespace plfm::agent
