#include <gtest/gtest.h>

#include "image/image_ref.h"

namespace plfm::image {
namespace {

const std::string kHex(64, 'a');

TEST(ImageRefTest, DockerHubDefaults) {
  auto r = parseImageRef("alpine");
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->repository, "library/alpine");
  EXPECT_EQ(r->tag, "latest");
  EXPECT_EQ(r->apiHost(), "registry-1.docker.io");
  EXPECT_EQ(r->str(), "docker.io/library/alpine:latest");

  auto u = parseImageRef("someuser/app:1.2");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->registry, "docker.io");
  EXPECT_EQ(u->repository, "someuser/app");
  EXPECT_EQ(u->tag, "1.2");
}

TEST(ImageRefTest, RegistryHostPortAndLocalhost) {
  auto r = parseImageRef("localhost:5000/x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->registry, "localhost:5000");
  EXPECT_EQ(r->repository, "x");
  EXPECT_EQ(r->tag, "latest");

  auto l = parseImageRef("localhost/team/app:v1");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->registry, "localhost");
  EXPECT_EQ(l->repository, "team/app");

  auto g = parseImageRef("ghcr.io/org/sub/app:v2.0-rc1");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->registry, "ghcr.io");
  EXPECT_EQ(g->repository, "org/sub/app");
  EXPECT_EQ(g->tag, "v2.0-rc1");
  EXPECT_EQ(g->reference(), "v2.0-rc1");

  auto ip6 = parseImageRef("[::1]:5000/app");
  ASSERT_TRUE(ip6) << ip6.error().toString();
  EXPECT_EQ(ip6->registry, "[::1]:5000");
}

TEST(ImageRefTest, Digests) {
  auto r = parseImageRef("repo@sha256:" + kHex);
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->repository, "library/repo");
  EXPECT_TRUE(r->tag.empty());
  ASSERT_TRUE(r->digest);
  EXPECT_EQ(r->reference(), "sha256:" + kHex);

  auto both = parseImageRef("127.0.0.1:5000/app:v1@sha256:" + kHex);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->tag, "v1");
  EXPECT_EQ(both->reference(), "sha256:" + kHex);  // the digest pins it
  EXPECT_EQ(both->str(), "127.0.0.1:5000/app:v1@sha256:" + kHex);
}

TEST(ImageRefTest, OciLayouts) {
  auto r = parseImageRef("oci:/images/app:v1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->transport, ImageRef::Transport::kOciLayout);
  EXPECT_EQ(r->layout_dir, "/images/app");
  EXPECT_EQ(r->tag, "v1");
  auto n = parseImageRef("oci:relative/dir");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->layout_dir, "relative/dir");
  EXPECT_TRUE(n->tag.empty());
  EXPECT_FALSE(parseImageRef("oci:"));
  EXPECT_FALSE(parseImageRef("oci:/dir:"));
}

TEST(ImageRefTest, RejectsMalformed) {
  for (const std::string& bad : std::vector<std::string>{
           "", "UPPER/case", "app:", "app:-tag", "app@sha256:abc", "app@md5:" + kHex, "a//b", "a b",
           "-app", "app-", "host:99999999/app", "app:" + std::string(200, 't')}) {
    auto r = parseImageRef(bad);
    EXPECT_FALSE(r) << "accepted '" << bad << "'";
    if (!r) {
      EXPECT_EQ(r.error().code(), "invalid_argument");
    }
  }
}

}  // namespace
}  // namespace plfm::image
