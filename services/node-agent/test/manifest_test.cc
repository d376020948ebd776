#include <gtest/gtest.h>

#include "image/image_config.h"
#include "image/manifest.h"
#include "image/media_types.h"
#include "image/registry_auth.h"
#include "plfm/core/json.h"

namespace plfm::image {
namespace {

std::string d(char c) { return "sha256:" + std::string(64, c); }

TEST(ManifestTest, ParsesOciManifest) {
  const std::string text =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      d('c') +
      R"(","size":123},
    "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
      d('1') +
      R"(","size":10},
              {"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" +
      d('2') + R"(","size":20}]})";
  auto doc = parseManifestDocument(text);
  ASSERT_TRUE(doc) << doc.error().toString();
  ASSERT_TRUE(doc->manifest);
  EXPECT_EQ(doc->manifest->config.digest.str(), d('c'));
  ASSERT_EQ(doc->manifest->layers.size(), 2U);
  EXPECT_EQ(doc->manifest->layers[1].size, 20);
  EXPECT_EQ(layerCompression(doc->manifest->layers[1].media_type), Compression::kZstd);
}

TEST(ManifestTest, DockerSchema2ByContentType) {
  // No mediaType field: the Content-Type decides.
  const std::string text =
      R"({"schemaVersion":2,"config":{"digest":")" + d('c') + R"(","size":1},"layers":[]})";
  auto doc = parseManifestDocument(text, std::string(media::kDockerManifest) + "; charset=utf-8");
  ASSERT_TRUE(doc) << doc.error().toString();
  ASSERT_TRUE(doc->manifest);
  EXPECT_EQ(doc->manifest->media_type, media::kDockerManifest);
}

TEST(ManifestTest, IndexAndPlatformSelection) {
  const std::string text =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
    "manifests":[
      {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")" +
      d('a') +
      R"(","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
      {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")" +
      d('b') +
      R"(","size":1,"platform":{"os":"linux","architecture":"amd64"}},
      {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      d('e') + R"(","size":1,"platform":{"os":"unknown","architecture":"unknown"}}]})";
  auto doc = parseManifestDocument(text);
  ASSERT_TRUE(doc) << doc.error().toString();
  ASSERT_TRUE(doc->index);
  auto amd = selectPlatform(*doc->index, "linux", "amd64");
  ASSERT_TRUE(amd);
  EXPECT_EQ(amd->digest.str(), d('b'));
  auto arm = selectPlatform(*doc->index, "linux", "arm64", "v8");
  ASSERT_TRUE(arm);
  EXPECT_EQ(arm->digest.str(), d('a'));
  auto none = selectPlatform(*doc->index, "linux", "s390x");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), "not_found");
  EXPECT_NE(none.error().message().find("linux/arm64/v8, linux/amd64"), std::string::npos)
      << none.error().message();
}

TEST(ManifestTest, RejectsBadDocuments) {
  EXPECT_FALSE(parseManifestDocument("not json"));
  EXPECT_FALSE(parseManifestDocument("[]"));
  EXPECT_FALSE(parseManifestDocument(R"({"schemaVersion":1,"fsLayers":[]})"));
  EXPECT_FALSE(parseManifestDocument(R"({"schemaVersion":2,"mediaType":"text/plain"})"));
  EXPECT_FALSE(parseManifestDocument(
      R"({"schemaVersion":2,"config":{"digest":"sha256:xyz","size":1},"layers":[]})"));
  EXPECT_FALSE(parseManifestDocument(R"({"schemaVersion":2,"config":{"digest":")" + d('c') +
                                     R"(","size":-1},"layers":[]})"));
  EXPECT_FALSE(parseManifestDocument(R"({"schemaVersion":2,"manifests":{}})"));
  auto big = parseManifestDocument(std::string(kMaxManifestBytes + 1, ' '));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code(), "image.bad_manifest");
}

TEST(ImageConfigTest, ExtractsRunSettings) {
  const std::string text = R"({"architecture":"amd64","os":"linux",
    "config":{"Entrypoint":["/bin/app"],"Cmd":["--port","8080"],"Env":["PATH=/bin","A=b"],
              "WorkingDir":"/srv","User":"1000:1000",
              "ExposedPorts":{"8080/tcp":{},"53/udp":{}},"Labels":{"x":"y"}},
    "rootfs":{"type":"layers","diff_ids":[")" +
                           d('1') + R"("]}})";
  auto c = parseImageConfig(text);
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->entrypoint, std::vector<std::string>{"/bin/app"});
  EXPECT_EQ(c->cmd.size(), 2U);
  EXPECT_EQ(c->workdir, "/srv");
  EXPECT_EQ(c->user, "1000:1000");
  EXPECT_EQ(c->exposed_ports, (std::vector<std::string>{"53/udp", "8080/tcp"}));
  ASSERT_EQ(c->diff_ids.size(), 1U);
  EXPECT_EQ(json::dump(c->toJson()),
            R"({"cmd":["--port","8080"],"entrypoint":["/bin/app"],"env":["PATH=/bin","A=b"],)"
            R"("exposed_ports":["53/udp","8080/tcp"],"user":"1000:1000","workdir":"/srv"})");

  auto empty = parseImageConfig(R"({"config":null})");
  ASSERT_TRUE(empty);
  EXPECT_EQ(
      json::dump(empty->toJson()),
      R"({"cmd":[],"entrypoint":[],"env":[],"exposed_ports":[],"user":"root","workdir":"/"})");
  auto bad = parseImageConfig(R"({"config":{"Env":"PATH=/bin"}})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("config.Env"), std::string::npos);
}

TEST(RegistryAuthTest, ParsesChallenges) {
  auto c = parseAuthChallenge(
      R"(Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push")");
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "https://auth.example.com/token");
  EXPECT_EQ(c->params["service"], "registry.example.com");
  EXPECT_EQ(c->params["scope"], "repository:a/b:pull,push");
  auto b = parseAuthChallenge(R"(Basic realm="basic-realm")");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->scheme, "basic");
  auto bare = parseAuthChallenge("Bearer realm=http://x/token, service=svc");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->params["service"], "svc");
  EXPECT_FALSE(parseAuthChallenge(R"(Bearer realm="unterminated)"));
  EXPECT_FALSE(parseAuthChallenge(""));
}

TEST(RegistryAuthTest, CredentialsFile) {
  // "dXNlcjpwYXNzOndvcmQ=" is base64("user:pass:word").
  auto s = parseCredentials(R"({"auths":{
      "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNzOndvcmQ="},
      "127.0.0.1:5000":{"username":"u","password":"p"}}})");
  ASSERT_TRUE(s) << s.error().toString();
  auto hub = findCredentials(*s, "docker.io");
  ASSERT_TRUE(hub);
  EXPECT_EQ(hub->username, "user");
  EXPECT_EQ(hub->password, "pass:word");
  auto local = findCredentials(*s, "127.0.0.1:5000");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->password, "p");
  EXPECT_FALSE(findCredentials(*s, "ghcr.io"));
  EXPECT_FALSE(parseCredentials(R"({"auths":{"x":{"auth":"bm9jb2xvbg=="}}})"));  // "nocolon"
  EXPECT_FALSE(parseCredentials(R"({"auths":[]})"));
}

}  // namespace
}  // namespace plfm::image
