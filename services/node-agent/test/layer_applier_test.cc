// Layer semantics on a real staging directory, with layers written by
// libarchive in the test: whiteouts, opaque dirs, links, hostile names and
// decompression bombs.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/layer_applier.h"
#include "image/rootfs_builder.h"
#include "plfm/core/process.h"
#include "plfm/core/sha256.h"
#include "plfm/testing/temp_dir.h"
#include "support/test_image.h"
#include "support/tree_inspect.h"

namespace plfm::image {
namespace {

namespace t = plfm::image::testing;
using t::TarEntry;

class LayerApplierTest : public ::testing::Test {
 protected:
  std::string layer(const std::vector<TarEntry>& entries,
                    t::Compression c = t::Compression::kGzip) {
    std::string path = dir_.file("layer" + std::to_string(n_++));
    auto r = t::writeLayer(path, entries, c);
    EXPECT_TRUE(r) << r.error().toString();
    return path;
  }
  Result<LayerStats> apply(LayerApplier& a, const std::string& path) {
    auto bytes = readFile(path);
    return a.apply(path, Digest::of(*bytes), std::nullopt);
  }
  std::string stage() {
    std::string s = dir_.file("stage" + std::to_string(n_++));
    ::mkdir(s.c_str(), 0755);
    return s;
  }
  static bool exists(const std::string& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0;
  }
  plfm::testing::TempDir dir_{"plfm-layer"};
  int n_ = 0;
};

TEST_F(LayerApplierTest, AppliesLayersWithWhiteoutsAndOpaqueDirs) {
  const std::string s = stage();
  LayerApplier a(s, {});
  ASSERT_TRUE(
      apply(a, layer({t::dir("etc"), t::file("etc/passwd", "root:x:0:0"), t::file("etc/gone", "x"),
                      t::dir("var/cache"), t::file("var/cache/old1", "1"), t::dir("var/cache/sub"),
                      t::file("var/cache/sub/old2", "2"), t::file("keep", "k")})));
  ASSERT_TRUE(apply(a, layer({t::whiteout("etc/gone"), t::dir("var/cache"), t::opaque("var/cache"),
                              t::file("var/cache/new", "n"),
                              t::file("etc/passwd", "root:x:0:0:new"), t::whiteout("missing/x")},
                             t::Compression::kZstd)));
  ASSERT_TRUE(a.finish());
  EXPECT_FALSE(exists(s + "/etc/gone"));
  EXPECT_FALSE(exists(s + "/var/cache/old1"));
  EXPECT_FALSE(exists(s + "/var/cache/sub"));
  EXPECT_TRUE(exists(s + "/var/cache/new"));
  EXPECT_TRUE(exists(s + "/keep"));
  EXPECT_EQ(*readFile(s + "/etc/passwd"), "root:x:0:0:new");
  EXPECT_FALSE(exists(s + "/etc/.wh.gone"));
  EXPECT_FALSE(exists(s + "/var/cache/.wh..wh..opq"));
}

TEST_F(LayerApplierTest, OpaqueKeepsEntriesOfItsOwnLayer) {
  const std::string s = stage();
  LayerApplier a(s, {});
  ASSERT_TRUE(apply(a, layer({t::file("d/lower", "l")}, t::Compression::kNone)));
  // The marker comes after a same-layer entry: that entry stays.
  ASSERT_TRUE(apply(a, layer({t::file("d/upper", "u"), t::opaque("d")})));
  EXPECT_TRUE(exists(s + "/d/upper"));
  EXPECT_FALSE(exists(s + "/d/lower"));
}

TEST_F(LayerApplierTest, LinksModesAndReplacement) {
  const std::string s = stage();
  LayerApplier a(s, {});
  TarEntry exe = t::file("bin/tool", "#!/bin/sh\n", 04755);
  TarEntry ro = t::dir("ro", 0555);
  TarEntry owned = t::file("home/app/data", "d", 0600);
  owned.uid = 1000;
  owned.gid = 1000;
  TarEntry x = t::file("xattr", "x");
  x.xattrs = {{"user.plfm", "value"}};
  ASSERT_TRUE(apply(a, layer({exe, t::hardlink("bin/tool-link", "bin/tool"),
                              t::symlink("bin/sh", "/bin/tool"), ro, t::file("ro/f", "f", 0444),
                              owned, x, t::dir("was-dir"), t::file("was-dir/f", "")})));
  // A later layer writes into the read-only dir and replaces a dir with a file.
  ASSERT_TRUE(apply(a, layer({t::file("ro/g", "g"), t::file("was-dir", "now a file")})));
  ASSERT_TRUE(a.finish());
  struct stat st1 {
  }, st2{};
  ASSERT_EQ(::lstat((s + "/bin/tool").c_str(), &st1), 0);
  ASSERT_EQ(::lstat((s + "/bin/tool-link").c_str(), &st2), 0);
  EXPECT_EQ(st1.st_ino, st2.st_ino);
  EXPECT_EQ(st1.st_mode & 07777, 04755U);
  char target[64] = {};
  ASSERT_GT(::readlink((s + "/bin/sh").c_str(), target, sizeof(target)), 0);
  EXPECT_STREQ(target, "/bin/tool");
  ASSERT_EQ(::lstat((s + "/ro").c_str(), &st1), 0);
  EXPECT_EQ(st1.st_mode & 07777, 0555U);
  EXPECT_TRUE(exists(s + "/ro/g"));
  EXPECT_EQ(*readFile(s + "/was-dir"), "now a file");
  if (::geteuid() == 0) {
    ASSERT_EQ(::lstat((s + "/home/app/data").c_str(), &st1), 0);
    EXPECT_EQ(st1.st_uid, 1000U);
    EXPECT_TRUE(a.fixups().empty() || a.fixups().count("home/app/data") == 0);
  } else {
    ASSERT_EQ(a.fixups().count("home/app/data"), 1U);
    EXPECT_EQ(*a.fixups().at("home/app/data").uid, 1000U);
  }
  // Tenant xattrs never touch the host; they become ext4 fixups.
  char value[16] = {};
  EXPECT_LT(::lgetxattr((s + "/xattr").c_str(), "user.plfm", value, sizeof(value)), 0);
  ASSERT_EQ(a.fixups().count("xattr"), 1U);
  EXPECT_EQ(a.fixups().at("xattr").xattrs.at(0).first, "user.plfm");
}

TEST_F(LayerApplierTest, XattrsReachTheExt4AsFixupsAndTrustedIsDropped) {
  // Allowed namespaces are written into the ext4 by libext2fs; trusted.*
  // would steer the guest's overlayfs and is dropped.
  const std::string s = stage();
  LayerApplier a(s, {});
  TarEntry f = t::file("f", "x");
  f.xattrs = {{"user.plfm", "test"}, {"trusted.plfm", "t"}};
  ASSERT_TRUE(apply(a, layer({f})));
  ASSERT_TRUE(a.finish());
  EXPECT_GE(a.droppedXattrs(), 1U);  // libarchive's pax writer stores it twice
  std::map<std::string, InodeFixup> fixups = a.fixups();
  fixups["f"].xattrs.emplace_back("security.plfm", std::string("\x01\x02", 2));
  const std::string img = dir_.file("x.ext4");
  auto built = buildExt4(s, fixups, img, dir_.path(), {});
  ASSERT_TRUE(built) << built.error().toString();
  auto got = t::listExt4(img, dir_.path());
  ASSERT_TRUE(got) << got.error().toString();
  EXPECT_EQ(got->at("/f"), "file 0644 0:0 1 xattr security.plfm=01 02 xattr user.plfm=\"test\"");
}

TEST_F(LayerApplierTest, DeviceNodesBecomeFixupsNotHostNodes) {
  const std::string s = stage();
  LayerApplier a(s, {});
  TarEntry null = t::file("dev/null", "");
  null.type = TarEntry::Type::kCharDev;
  null.major = 1;
  null.minor = 3;
  null.mode = 0666;
  TarEntry gone = null;
  gone.path = "dev/gone";
  ASSERT_TRUE(apply(a, layer({t::dir("dev"), null, gone})));
  ASSERT_TRUE(apply(a, layer({t::whiteout("dev/gone")})));
  EXPECT_FALSE(exists(s + "/dev/null"));
  ASSERT_EQ(a.fixups().count("dev/null"), 1U);
  const InodeFixup& f = a.fixups().at("dev/null");
  EXPECT_EQ(f.device, 'c');
  EXPECT_EQ(f.major, 1U);
  EXPECT_EQ(f.minor, 3U);
  EXPECT_EQ(*f.mode, static_cast<uint32_t>(S_IFCHR | 0666));
  EXPECT_EQ(a.fixups().count("dev/gone"), 0U);
}

TEST_F(LayerApplierTest, RejectsDotDotEntries) {
  LayerApplier a(stage(), {});
  auto r = apply(a, layer({t::file("../../etc/evil", "x")}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), "image.path_escape");
  EXPECT_NE(r.error().message().find("../../etc/evil"), std::string::npos) << r.error().message();
  EXPECT_FALSE(exists(dir_.path() + "/etc/evil"));
}

TEST_F(LayerApplierTest, SymlinksResolveInsideTheRootfs) {
  // An absolute symlink to /etc, then a write through it: it lands in the
  // rootfs's etc, never the host's.
  const std::string s = stage();
  LayerApplier a(s, {});
  ASSERT_TRUE(apply(a, layer({t::dir("etc"), t::symlink("evil", "/etc"),
                              t::symlink("lib", "usr/lib"), t::dir("usr/lib")})));
  ASSERT_TRUE(apply(a, layer({t::file("evil/plfm-probe", "inside"), t::file("lib/libx.so", "x")})));
  EXPECT_EQ(*readFile(s + "/etc/plfm-probe"), "inside");
  EXPECT_TRUE(exists(s + "/usr/lib/libx.so"));
  EXPECT_FALSE(exists("/etc/plfm-probe"));
}

TEST_F(LayerApplierTest, RejectsSymlinkEscapes) {
  const std::string s = stage();
  LayerApplier a(s, {});
  ASSERT_TRUE(apply(a, layer({t::dir("a"), t::symlink("a/up", "../../../../tmp")})));
  auto r = apply(a, layer({t::file("a/up/plfm-escape", "x")}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), "image.path_escape");
  EXPECT_NE(r.error().message().find("outside the rootfs"), std::string::npos);
  EXPECT_FALSE(exists("/tmp/plfm-escape"));
  // A hardlink may not reach outside either.
  auto h = apply(a, layer({t::hardlink("stolen", "../../etc/passwd")}));
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), "image.path_escape");
}

TEST_F(LayerApplierTest, StopsDecompressionBombs) {
  TarEntry big = t::file("zeros", "");
  big.zero_bytes = 64 << 20;  // compresses about 1000:1
  const std::string bomb = layer({big});
  {
    UnpackLimits l;
    l.max_compression_ratio = 100;
    l.ratio_grace_bytes = 1 << 20;
    LayerApplier a(stage(), l);
    auto r = apply(a, bomb);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), "image.limit_exceeded");
    EXPECT_EQ(r.error().detail("limit"), "max_compression_ratio");
    EXPECT_NE(r.error().message().find("decompression bomb"), std::string::npos);
  }
  {
    // No grace at all: a compressed bomb stops at once, while the same bytes
    // uncompressed (ratio 1, however libarchive counts its input) pass.
    UnpackLimits l;
    l.max_compression_ratio = 100;
    l.ratio_grace_bytes = 0;
    LayerApplier a(stage(), l);
    auto r = apply(a, bomb);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().detail("limit"), "max_compression_ratio");
    TarEntry plain_zeros = big;
    plain_zeros.zero_bytes = 4 << 20;
    LayerApplier b(stage(), l);
    auto p = apply(b, layer({plain_zeros}, t::Compression::kNone));
    EXPECT_TRUE(p) << p.error().toString();
  }
  {
    UnpackLimits l;
    l.max_layer_unpacked_bytes = 8 << 20;
    LayerApplier a(stage(), l);
    auto r = apply(a, bomb);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().detail("limit"), "max_layer_unpacked_bytes");
  }
  {
    UnpackLimits l;
    l.max_entries = 3;
    LayerApplier a(stage(), l);
    auto r =
        apply(a, layer({t::file("1", ""), t::file("2", ""), t::file("3", ""), t::file("4", "")}));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().detail("limit"), "max_entries");
  }
}

TEST_F(LayerApplierTest, ImageTotalLimitCountsEveryLayer) {
  TarEntry two_mib = t::file("a", "");
  two_mib.zero_bytes = 2 << 20;
  TarEntry other = two_mib;
  other.path = "b";
  UnpackLimits l;
  l.max_image_unpacked_bytes = 3 << 20;  // each layer fits, the two together do not
  l.max_layer_unpacked_bytes = 3 << 20;
  LayerApplier a(stage(), l);
  auto first = apply(a, layer({two_mib}, t::Compression::kNone));
  ASSERT_TRUE(first) << first.error().toString();
  EXPECT_GT(first->tar_bytes, uint64_t{2} << 20);
  auto second = apply(a, layer({other}, t::Compression::kNone));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), "image.limit_exceeded");
  EXPECT_EQ(second.error().detail("limit"), "max_image_unpacked_bytes");
  EXPECT_NE(second.error().message().find("max_image_unpacked_bytes = 3145728"), std::string::npos)
      << second.error().message();
  // A fresh applier (another image) starts from zero.
  LayerApplier b(stage(), l);
  EXPECT_TRUE(apply(b, layer({other}, t::Compression::kNone)));
}

TEST_F(LayerApplierTest, PathLengthLimit) {
  // Components of 100 bytes stay under NAME_MAX; the total is what counts.
  auto longName = [](size_t total) {
    std::string p;
    while (p.size() + 101 < total) p += std::string(100, 'd') + "/";
    p += std::string(total - p.size(), 'f');
    return p;
  };
  {
    UnpackLimits l;
    l.max_path_bytes = 300;
    LayerApplier a(stage(), l);
    const std::string fits = longName(300);
    ASSERT_EQ(fits.size(), 300U);
    auto ok = apply(a, layer({t::file(fits, "x")}));
    ASSERT_TRUE(ok) << ok.error().toString();
    auto r = apply(a, layer({t::file(longName(301), "x")}));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), "image.limit_exceeded");
    EXPECT_EQ(r.error().detail("limit"), "max_path_bytes");
    EXPECT_NE(r.error().message().find("301 bytes"), std::string::npos) << r.error().message();
    // A hardlink's target is held to the same limit.
    auto h = apply(a, layer({t::hardlink("short", longName(301))}));
    ASSERT_FALSE(h);
    EXPECT_EQ(h.error().detail("limit"), "max_path_bytes");
  }
  {
    LayerApplier a(stage(), {});  // the default: 4096
    auto r = apply(a, layer({t::file(longName(4097), "x")}));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().detail("limit"), "max_path_bytes");
  }
}

TEST_F(LayerApplierTest, AcceptsAStreamEndingWithoutTarTrailer) {
  // As umoci insert writes them: the stream stops after the last entry,
  // without padding or end-of-archive blocks. Go's archive/tar accepts that;
  // so do we, as long as the last entry is whole.
  auto cut = [&](const std::vector<TarEntry>& entries, size_t keep) {
    auto bytes = readFile(layer(entries, t::Compression::kNone));
    EXPECT_GT(bytes->size(), keep);
    std::string path = dir_.file("cut" + std::to_string(n_++));
    EXPECT_TRUE(writeFileAtomic(path, bytes->substr(0, keep)));
    return path;
  };
  // ustar: a 512-byte header per entry, data padded to 512.
  const std::string no_padding = cut({t::dir("d"), t::file("d/f", "hello")}, 1024 + 5);
  const std::string s1 = stage();
  LayerApplier a(s1, {});
  auto r1 = apply(a, no_padding);
  ASSERT_TRUE(r1) << r1.error().toString();
  EXPECT_EQ(*readFile(s1 + "/d/f"), "hello");
  EXPECT_EQ(r1->tar_bytes, 1029U);

  const std::string no_trailer = cut({t::file("f", "hello"), t::dir("d")}, 1536);
  const std::string s2 = stage();
  LayerApplier b(s2, {});
  auto r2 = apply(b, no_trailer);
  ASSERT_TRUE(r2) << r2.error().toString();
  EXPECT_TRUE(exists(s2 + "/d"));

  // A file cut short is still an error.
  const std::string short_data = cut({t::dir("d"), t::file("d/f", "hello")}, 1024 + 2);
  LayerApplier c(stage(), {});
  auto r3 = apply(c, short_data);
  ASSERT_FALSE(r3);
  EXPECT_EQ(r3.error().code(), "image.bad_layer");
}

TEST_F(LayerApplierTest, VerifiesDiffId) {
  const std::string path = layer({t::file("a", "a")});
  LayerApplier a(stage(), {});
  auto bytes = readFile(path);
  auto wrong = Digest::parse("sha256:" + std::string(64, '0'));
  auto r = a.apply(path, Digest::of(*bytes), *wrong);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), "image.digest_mismatch");
  EXPECT_NE(r.error().message().find("diff_id"), std::string::npos);
}

TEST_F(LayerApplierTest, RejectsGarbage) {
  const std::string path = dir_.file("garbage");
  ASSERT_TRUE(writeFileAtomic(path, std::string(4096, 'x')));
  LayerApplier a(stage(), {});
  auto r = a.apply(path, Digest::of("x"), std::nullopt);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), "image.bad_layer");
}

}  // namespace
}  // namespace plfm::image
