// The ext4 fixup writer (libext2fs) and the attack it replaced: a layer whose
// pax xattr names carried debugfs commands (docs/security.md). The hostile
// layers are written byte by byte here, so that a header can hold what
// libarchive's writer never would (a NUL inside a key, an 8 KiB name).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "image/ext4_fixups.h"
#include "image/fs_util.h"
#include "image/layer_applier.h"
#include "image/rootfs_builder.h"
#include "plfm/core/process.h"
#include "plfm/core/sha256.h"
#include "plfm/testing/temp_dir.h"
#include "support/raw_tar.h"
#include "support/test_image.h"
#include "support/tree_inspect.h"

namespace plfm::image {
namespace {

namespace t = plfm::image::testing;
using t::paxRecord;
using t::rawTar;

class Ext4FixupsTest : public ::testing::Test {
 protected:
  std::string stage() {
    std::string s = dir_.file("stage" + std::to_string(n_++));
    ::mkdir(s.c_str(), 0755);
    return s;
  }
  Result<LayerStats> applyRaw(LayerApplier& a, const std::string& bytes) {
    const std::string path = dir_.file("raw" + std::to_string(n_++) + ".tar");
    PLFM_TRY(writeFileAtomic(path, bytes));
    return a.apply(path, Digest::of(bytes), std::nullopt);
  }
  static bool exists(const std::string& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0;
  }
  plfm::testing::TempDir dir_{"plfm-ext4fix"};
  int n_ = 0;
};

TEST_F(Ext4FixupsTest, HostileXattrNamesProduceNothingOutsideTheLayer) {
  // Each name below, written into a debugfs script, ran debugfs commands as
  // root: `write` copied a host file into the image, `dump`/`rdump` wrote host
  // files, `!` is debugfs's shell escape, and an 8 KiB name overran its line
  // buffer. None may have any effect but a dropped xattr.
  const std::string host_secret = dir_.file("host-secret");
  ASSERT_TRUE(writeFileAtomic(host_secret, "host-only-bytes"));
  const std::string dumped = dir_.file("dumped");
  const std::string rdumped = dir_.file("rdumped");
  const std::string banged = dir_.file("banged");
  ::mkdir(rdumped.c_str(), 0755);
  const std::string x = "SCHILY.xattr.";
  const std::vector<std::string> names = {
      "x.a\"\nwrite " + host_secret + " /pwned\n",
      "x.b\rwrite " + host_secret + " /pwned-cr",
      "x.c\" \"/etc/app.conf\" \"v\"\ndump /etc/app.conf " + dumped + "\n",
      "x.d\nrdump / " + rdumped + "\n",
      "!touch " + banged,
      "x.e\n!touch " + banged + "\n",
      "user.\"\nwrite " + host_secret + " /pwned-user\n",
      "user." + std::string(8300, 'L') + "\nwrite " + host_secret + " /pwned-long\n",
      "trusted.overlay.opaque",
  };
  std::vector<std::string> pax = {paxRecord(x + "user.ok", "fine")};
  for (const auto& n : names) pax.push_back(paxRecord(x + n, "v"));
  // LIBARCHIVE.xattr names are %-encoded, so a newline arrives decoded.
  pax.push_back(
      paxRecord("LIBARCHIVE.xattr.x.f%0Awrite%20" + host_secret + "%20/pwned-enc", "dg=="));
  // NUL inside the key, last: libarchive stops reading the header's records
  // at it (the name is cut there or dropped).
  pax.push_back(
      paxRecord(x + std::string("user.nul\0\nwrite ", 16) + host_secret + " /pwned-nul", "v"));
  const std::string tar = rawTar({{"etc", '5', "", {}}, {"etc/app.conf", '0', "app", pax}});

  const std::string s = stage();
  LayerApplier a(s, {});
  auto applied = applyRaw(a, tar);
  ASSERT_TRUE(applied) << applied.error().toString();
  ASSERT_TRUE(a.finish());
  EXPECT_GE(a.droppedXattrs(), names.size());
  const std::string img = dir_.file("hostile.ext4");
  auto built = buildExt4(s, a.fixups(), img, dir_.path(), {});
  ASSERT_TRUE(built) << built.error().toString();

  auto got = t::listExt4(img, dir_.path());
  ASSERT_TRUE(got) << got.error().toString();
  std::vector<std::string> paths;
  for (const auto& [p, d] : *got) paths.push_back(p);
  EXPECT_EQ(paths, (std::vector<std::string>{"/etc", "/etc/app.conf"}));
  const std::string& conf = got->at("/etc/app.conf");
  EXPECT_EQ(conf.rfind("file 0644 0:0 3", 0), 0U) << conf;
  EXPECT_NE(conf.find("xattr user.ok=\"fine\""), std::string::npos) << conf;
  EXPECT_EQ(conf.find("trusted."), std::string::npos) << conf;
  EXPECT_FALSE(exists(dumped));
  EXPECT_FALSE(exists(banged));
  EXPECT_FALSE(exists(rdumped + "/etc"));
  // No file in the host's staging tree got a tenant xattr either.
  auto host = t::listHostTree(s);
  ASSERT_TRUE(host);
  EXPECT_EQ(host->at("/etc/app.conf").find("xattr"), std::string::npos)
      << host->at("/etc/app.conf");
}

TEST_F(Ext4FixupsTest, WritesDevicesOwnersModesAndXattrs) {
  const std::string s = stage();
  ASSERT_EQ(::mkdir((s + "/dev").c_str(), 0755), 0);
  ASSERT_TRUE(writeFileAtomic(s + "/f", "data"));
  std::map<std::string, InodeFixup> fixups;
  InodeFixup& null = fixups["dev/null"];
  null.device = 'c';
  null.major = 1;
  null.minor = 3;
  null.mode = S_IFCHR | 0666;
  InodeFixup& big = fixups["dev/big"];
  big.device = 'b';
  big.major = 259;
  big.minor = 70000;
  big.mode = S_IFBLK | 0600;
  big.uid = 70000;
  big.gid = 5;
  InodeFixup& f = fixups["f"];
  f.mode = S_IFREG | 04750;
  f.uid = 100000;
  f.gid = 100001;
  f.xattrs = {{"user.a", "1"}, {"security.capability", std::string("\x01\x00\x00\x02", 4)}};
  const std::string img = dir_.file("f.ext4");
  auto built = buildExt4(s, fixups, img, dir_.path(), {});
  ASSERT_TRUE(built) << built.error().toString();
  EXPECT_EQ(built->fixups, 3U);
  auto got = t::listExt4(img, dir_.path());
  ASSERT_TRUE(got) << got.error().toString();
  EXPECT_EQ(got->at("/dev/null"), "chardev 0666 0:0 1,3");
  EXPECT_EQ(got->at("/dev/big"), "blockdev 0600 70000:5 259,70000");
  EXPECT_EQ(got->at("/f"),
            "file 4750 100000:100001 4 xattr security.capability=01 00 00 02 xattr user.a=\"1\"");
  // e2fsck agrees the image is consistent after the library wrote into it.
  auto fsck = runChecked({"e2fsck", "-fn", img}, {});
  EXPECT_TRUE(fsck) << fsck.error().toString();
}

TEST_F(Ext4FixupsTest, RefusesPathsThatDoNotResolveWithoutSymlinks) {
  const std::string s = stage();
  ASSERT_EQ(::mkdir((s + "/real").c_str(), 0755), 0);
  ASSERT_TRUE(writeFileAtomic(s + "/real/f", "x"));
  ASSERT_EQ(::symlink("real", (s + "/link").c_str()), 0);
  const std::string img = dir_.file("l.ext4");
  std::map<std::string, InodeFixup> through_link;
  through_link["link/f"].uid = 7;
  auto r = buildExt4(s, through_link, img, dir_.path(), {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("not a directory"), std::string::npos) << r.error().message();
  EXPECT_FALSE(exists(img));

  std::map<std::string, InodeFixup> wrong_type;
  wrong_type["real/f"].mode = S_IFDIR | 0755;
  r = buildExt4(s, wrong_type, img, dir_.path(), {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("file type differs"), std::string::npos);

  std::map<std::string, InodeFixup> hostile_name;
  hostile_name["real/f"].xattrs = {{"x.\nwrite /etc/hostname /pwned", "v"}};
  r = buildExt4(s, hostile_name, img, dir_.path(), {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("\\x0a"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace plfm::image
