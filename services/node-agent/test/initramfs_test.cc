#include "runtime/initramfs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::runtime {
namespace {

void write(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

TEST(NewcTest, RoundTripsEntries) {
  const std::vector<CpioEntry> entries = {
      {"dev", S_IFDIR | 0755, "", 0, 0},
      {"dev/console", S_IFCHR | 0600, "", 5, 1},
      {"init", S_IFREG | 0755,
       std::string("\x7f"
                   "ELF\0\1\2",
                   7),
       0, 0},
      {"odd", S_IFREG | 0644, "abc", 0, 0},  // forces padding
  };
  const std::string archive = writeNewc(entries);
  EXPECT_EQ(archive.size() % 512, 0u);
  EXPECT_EQ(archive.substr(0, 6), "070701");
  auto back = readNewc(archive);
  ASSERT_TRUE(back.has_value()) << back.error().toString();
  EXPECT_EQ(*back, entries);
}

TEST(NewcTest, HeaderFieldsAreNewc) {
  const std::string archive = writeNewc({{"init", S_IFREG | 0755, "xy", 0, 0}});
  // magic, ino 1, mode 0100755, uid 0, gid 0, nlink 1, mtime 0, filesize 2
  EXPECT_EQ(archive.substr(0, 62),
            "070701"
            "00000001"
            "000081ed"
            "00000000"
            "00000000"
            "00000001"
            "00000000"
            "00000002");
  // namesize 5 ("init\0") at field 12
  EXPECT_EQ(archive.substr(6 + 11 * 8, 8), "00000005");
  EXPECT_EQ(archive.substr(110, 5), std::string("init\0", 5));
}

TEST(NewcTest, RejectsBrokenArchives) {
  const std::string archive = writeNewc({{"init", S_IFREG | 0755, "xy", 0, 0}});
  EXPECT_FALSE(readNewc("").has_value());
  EXPECT_FALSE(readNewc("070702" + archive.substr(6)).has_value());
  EXPECT_FALSE(readNewc(archive.substr(0, 112)).has_value());
  std::string no_trailer = archive.substr(0, 120);
  EXPECT_FALSE(readNewc(no_trailer).has_value());
}

class InitramfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::mkdir(dir_.file("modules").c_str(), 0755), 0);
    write(dir_.file("init"), std::string("\x7f"
                                         "ELF-static-init",
                                         15));
    write(dir_.file("modules/virtio.ko"), "ko1");
    write(dir_.file("modules/virtio_ring.ko"), "ko0");
    write(dir_.file("modules.order"), "virtio_ring.ko\nvirtio.ko\n");
  }
  InitramfsInputs inputs() const {
    return InitramfsInputs{dir_.file("init"), dir_.file("modules"), ""};
  }
  plfm::testing::TempDir dir_{"initramfs"};
};

TEST_F(InitramfsTest, CarriesInitModulesAndOrder) {
  auto path = buildInitramfs(inputs(), dir_.file("cache"));
  ASSERT_TRUE(path.has_value()) << path.error().toString();
  EXPECT_EQ(path->rfind(dir_.file("cache/initramfs-"), 0), 0u);
  auto bytes = readFile(*path);
  ASSERT_TRUE(bytes.has_value());
  auto entries = readNewc(*bytes);
  ASSERT_TRUE(entries.has_value());
  std::map<std::string, CpioEntry> by_path;
  std::vector<std::string> modules;
  for (const auto& e : *entries) {
    by_path[e.path] = e;
    if (e.path.rfind("lib/modules/", 0) == 0) modules.push_back(e.path);
  }
  EXPECT_EQ(by_path["init"].mode, static_cast<uint32_t>(S_IFREG | 0755));
  EXPECT_EQ(by_path["init"].data.substr(0, 4),
            "\x7f"
            "ELF");
  EXPECT_EQ(by_path["dev/console"].rdev_major, 5u);
  for (const char* d : {"proc", "sys", "dev", "run", "tmp", "newroot"}) {
    EXPECT_TRUE(S_ISDIR(by_path[d].mode)) << d;
  }
  EXPECT_EQ(modules,
            (std::vector<std::string>{"lib/modules/virtio_ring.ko", "lib/modules/virtio.ko",
                                      "lib/modules/modules.order"}));
  EXPECT_EQ(by_path["lib/modules/modules.order"].data, "virtio_ring.ko\nvirtio.ko\n");
}

TEST_F(InitramfsTest, CachedByContent) {
  auto first = buildInitramfs(inputs(), dir_.file("cache"));
  auto again = buildInitramfs(inputs(), dir_.file("cache"));
  ASSERT_TRUE(first && again);
  EXPECT_EQ(*first, *again);
  write(dir_.file("modules/virtio.ko"), "ko1-rebuilt");
  auto changed = buildInitramfs(inputs(), dir_.file("cache"));
  ASSERT_TRUE(changed.has_value());
  EXPECT_NE(*changed, *first);
}

TEST_F(InitramfsTest, RefusesBadInputs) {
  InitramfsInputs in = inputs();
  write(dir_.file("modules.order"), "../../etc/shadow.ko\n");
  EXPECT_FALSE(buildInitramfs(in, dir_.file("cache")).has_value());
  write(dir_.file("modules.order"), "missing.ko\n");
  EXPECT_FALSE(buildInitramfs(in, dir_.file("cache")).has_value());
  write(dir_.file("init"), "#!/bin/sh\n");
  in.modules_dir.clear();
  EXPECT_FALSE(buildInitramfs(in, dir_.file("cache")).has_value());
}

}  // namespace
}  // namespace plfm::runtime
