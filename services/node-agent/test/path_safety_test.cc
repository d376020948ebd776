#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "image/path_safety.h"

namespace plfm::image {
namespace {

TEST(PathSafetyTest, CleansNames) {
  EXPECT_EQ(*cleanEntryPath("./usr/bin/x"), "usr/bin/x");
  EXPECT_EQ(*cleanEntryPath("/etc//passwd"), "etc/passwd");
  EXPECT_EQ(*cleanEntryPath("usr/share/"), "usr/share");
  EXPECT_EQ(*cleanEntryPath("./"), "");
  EXPECT_EQ(*cleanEntryPath("a/./b"), "a/b");
  EXPECT_EQ(*cleanEntryPath("a/..b/c.."), "a/..b/c..");
}

TEST(PathSafetyTest, RejectsTraversal) {
  for (const char* bad : {"../etc/passwd", "a/../../b", "a/..", "./../x", "/.."}) {
    auto r = cleanEntryPath(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), "image.path_escape");
    EXPECT_NE(r.error().message().find("path traversal"), std::string::npos);
  }
  auto nul = cleanEntryPath(std::string("a\0b", 3));
  EXPECT_FALSE(nul);
  auto longName = cleanEntryPath(std::string(5000, 'a'));
  ASSERT_FALSE(longName);
  EXPECT_EQ(longName.error().code(), "image.limit_exceeded");
}

TEST(PathSafetyTest, ClassifiesWhiteouts) {
  auto w = classifyWhiteout("etc/.wh.passwd");
  EXPECT_EQ(w.kind, Whiteout::Kind::kFile);
  EXPECT_EQ(w.target, "etc/passwd");
  auto top = classifyWhiteout(".wh.tmp");
  EXPECT_EQ(top.kind, Whiteout::Kind::kFile);
  EXPECT_EQ(top.target, "tmp");
  auto o = classifyWhiteout("var/cache/.wh..wh..opq");
  EXPECT_EQ(o.kind, Whiteout::Kind::kOpaque);
  EXPECT_EQ(o.target, "var/cache");
  auto root_opq = classifyWhiteout(".wh..wh..opq");
  EXPECT_EQ(root_opq.kind, Whiteout::Kind::kOpaque);
  EXPECT_EQ(root_opq.target, "");
  EXPECT_EQ(classifyWhiteout("a/.wh..wh.plnk").kind, Whiteout::Kind::kOtherMeta);
  EXPECT_EQ(classifyWhiteout("a/.wh.").kind, Whiteout::Kind::kOtherMeta);
  EXPECT_EQ(classifyWhiteout("a/b.wh.c").kind, Whiteout::Kind::kNone);
  EXPECT_EQ(classifyWhiteout("a/.whx").kind, Whiteout::Kind::kNone);
}

TEST(PathSafetyTest, SplitsAndJoins) {
  EXPECT_EQ(splitPath("a//b/c/"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(joinPath({"a", "b"}), "a/b");
  EXPECT_EQ(parentOf("a/b/c"), "a/b");
  EXPECT_EQ(parentOf("a"), "");
  EXPECT_EQ(baseOf("a/b/c"), "c");
}

TEST(PathSafetyTest, XattrNamesFromLayersAreAllowListed) {
  for (const char* ok : {"user.plfm", "user.a.b-c_d", "security.capability", "security.selinux",
                         "system.posix_acl_access", "system.posix_acl_default"}) {
    EXPECT_EQ(checkXattrName(ok), XattrNameVerdict::kAllowed) << ok;
  }
  const std::vector<std::pair<std::string, XattrNameVerdict>> bad = {
      {"trusted.overlay.opaque", XattrNameVerdict::kBadNamespace},
      {"system.nfs4_acl", XattrNameVerdict::kBadNamespace},
      {"plfm", XattrNameVerdict::kBadNamespace},
      {"user.", XattrNameVerdict::kBadNamespace},
      {"", XattrNameVerdict::kBadNamespace},
      {"!sh -c id", XattrNameVerdict::kBadBytes},
      {"user.a\" \"/x\"\nwrite /etc/hostname /pwned", XattrNameVerdict::kBadBytes},
      {"user.a\rb", XattrNameVerdict::kBadBytes},
      {std::string("user.a\0b", 8), XattrNameVerdict::kBadBytes},
      {"user.\xc3\xa9", XattrNameVerdict::kBadBytes},
      {"user.a b", XattrNameVerdict::kBadBytes},
      {"user." + std::string(251, 'x'), XattrNameVerdict::kTooLong},
      {"user." + std::string(8192, 'x'), XattrNameVerdict::kTooLong},
  };
  for (const auto& [name, want] : bad) {
    EXPECT_EQ(checkXattrName(name), want) << printable(name);
    EXPECT_NE(describe(want), "allowed");
  }
  EXPECT_EQ(checkXattrName("user." + std::string(250, 'x')), XattrNameVerdict::kAllowed);
}

TEST(PathSafetyTest, PrintableEscapesEverythingElse) {
  EXPECT_EQ(printable("user.ok"), "user.ok");
  EXPECT_EQ(printable(std::string("a\"\n\r\0\\", 6)), "a\"\\x0a\\x0d\\x00\\x5c");
  EXPECT_EQ(printable(std::string(10, 'x'), 4), "xxxx...");
}

}  // namespace
}  // namespace plfm::image
