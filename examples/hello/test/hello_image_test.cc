// build-image against a real docker-registry: the pushed reference on the
// last stdout line, the same digest on a second run, skopeo and umoci
// reading the image, the node agent's ImageCache pulling it into an ext4
// rootfs with the right owners, and the unpacked binary serving TLS with the
// image's own certificate for the vt.toml hostnames.
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "image/image_cache.h"
#include "image/image_ref.h"
#include "plfm/core/json.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "support/hello_process.h"
#include "support/registry_fixture.h"
#include "support/tree_inspect.h"

namespace plfm::hello {
namespace {

namespace t = plfm::image::testing;
using testing::HelloProcess;
using testing::Output;
using testing::runCapture;

const std::string kBuildImage = std::string(PLFM_TEST_DIR) + "/build-image";

std::string lastLine(const std::string& text) {
  std::string s = text;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  auto nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

class HelloImageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new plfm::testing::TempDir("hello-img");
    auto r = t::Registry::start(dir_->file("registry"));
    ASSERT_TRUE(r) << r.error().toString();
    registry_ = r->release();
  }
  static void TearDownTestSuite() {
    delete registry_;
    delete dir_;
  }

  // build-image --bin hello --work WORK REGISTRY TAG, with fixed timestamps.
  static Output buildImage(const std::string& tag, const std::string& work) {
    return runCapture(
        {kBuildImage, "--bin", PLFM_HELLO_BIN, "--work", work, registry_->host(), tag},
        dir_->path(), {"SOURCE_DATE_EPOCH=1700000000"});
  }

  static plfm::testing::TempDir* dir_;
  static t::Registry* registry_;
};

plfm::testing::TempDir* HelloImageTest::dir_ = nullptr;
t::Registry* HelloImageTest::registry_ = nullptr;

TEST_F(HelloImageTest, PushesAReproducibleImageThatToolsAndTheAgentRead) {
  const std::string work = dir_->file("work");
  Output first = buildImage("t1", work);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string ref = lastLine(first.out);
  const std::regex want("^" + std::regex_replace(registry_->host(), std::regex("\\."), "\\.") +
                        "/hello:t1@(sha256:[0-9a-f]{64})$");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(ref, m, want)) << first.out;
  const std::string digest = m[1];

  // Idempotent and reproducible: the same inputs push the same digest.
  Output second = buildImage("t1", work);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(lastLine(second.out), ref);

  // skopeo reads it back from the registry.
  Output inspect = runCapture(
      {"skopeo", "inspect", "--tls-verify=false", "docker://" + registry_->host() + "/hello:t1"},
      dir_->path());
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  auto j = json::parse(inspect.out);
  ASSERT_TRUE(j) << inspect.out;
  EXPECT_EQ((*j)["Digest"], digest);
  EXPECT_EQ((*j)["Os"], "linux");
  EXPECT_EQ((*j)["Architecture"], "amd64");

  // umoci unpacks the layout (as an unprivileged user would) and resolves
  // the user from the image's /etc/passwd.
  const std::string bundle = dir_->file("bundle");
  Output unpack = runCapture(
      {"umoci", "unpack", "--rootless", "--image", work + "/oci:hello", bundle}, dir_->path());
  ASSERT_EQ(unpack.exit_code, 0) << unpack.err;
  auto spec = json::parse(readFile(bundle + "/config.json").value_or(""));
  ASSERT_TRUE(spec);
  EXPECT_EQ((*spec)["process"]["user"]["uid"], 10001);
  EXPECT_EQ((*spec)["process"]["user"]["gid"], 10001);
  EXPECT_EQ((*spec)["process"]["args"], nlohmann::json::array({"/usr/bin/hello"}));

  // The node agent's own pull: config and an ext4 rootfs.
  auto cache = image::ImageCache::open(dir_->file("cache"));
  ASSERT_TRUE(cache) << cache.error().toString();
  auto parsed = image::parseImageRef(ref);
  ASSERT_TRUE(parsed) << parsed.error().toString();
  auto img = cache->pull(*parsed);
  ASSERT_TRUE(img) << img.error().toString();
  EXPECT_EQ(img->manifest_digest.str(), digest);
  EXPECT_EQ(json::dump(img->config.toJson()),
            R"({"cmd":[],"entrypoint":["/usr/bin/hello"],"env":["PATH=/usr/bin","PORT=8443",)"
            R"("HEALTH_PORT=8080","TLS_CERT_FILE=/etc/hello/cert.pem",)"
            R"("TLS_KEY_FILE=/etc/hello/key.pem"],"exposed_ports":["8080/tcp","8443/tcp"],)"
            R"("user":"hello:hello","workdir":"/"})");
  auto tree = t::listExt4(img->rootfs, dir_->path());
  ASSERT_TRUE(tree) << tree.error().toString();
  auto entry = [&](const std::string& path) {
    auto it = tree->find(path);
    return it == tree->end() ? std::string("missing") : it->second;
  };
  EXPECT_EQ(entry("/etc/hello/key.pem").rfind("file 0640 0:10001 ", 0), 0U)
      << entry("/etc/hello/key.pem");
  EXPECT_EQ(entry("/etc/hello/cert.pem").rfind("file 0644 0:0 ", 0), 0U);
  EXPECT_EQ(entry("/usr/bin/hello").rfind("file 0755 0:0 ", 0), 0U);
  auto passwd = t::catExt4(img->rootfs, "/etc/passwd", dir_->path());
  ASSERT_TRUE(passwd);
  EXPECT_NE(passwd->find("\nhello:x:10001:10001:"), std::string::npos) << *passwd;

  // The image's binary serves with the image's certificate, which verifies
  // for both route hostnames.
  const std::string root = bundle + "/rootfs";
  auto hello = HelloProcess::start({.bin = root + "/usr/bin/hello",
                                    .cert = root + "/etc/hello/cert.pem",
                                    .key = root + "/etc/hello/key.pem",
                                    .log = dir_->file("hello.log"),
                                    .env = {}});
  ASSERT_TRUE(hello) << hello.error().toString();
  const std::string port = std::to_string(hello->port());
  for (const std::string host : {"hello.localhost", "hello-pp.localhost"}) {
    std::string authority = host;
    authority.append(":").append(port);
    Output curl =
        runCapture({"curl", "-sS", "--max-time", "10", "--cacert", root + "/etc/hello/cert.pem",
                    "--resolve", authority + ":::1", "https://" + authority + "/"},
                   dir_->path());
    EXPECT_EQ(curl.exit_code, 0) << host << ": " << curl.err;
    EXPECT_NE(curl.out.find("sni: " + host + "\n"), std::string::npos) << curl.out;
  }
  EXPECT_EQ(hello->stop(), 0);
}

TEST_F(HelloImageTest, RejectsBadArguments) {
  Output none = runCapture({kBuildImage}, dir_->path());
  EXPECT_EQ(none.exit_code, 2);
  Output dynamic = runCapture(
      {kBuildImage, "--bin", "/bin/true", "--work", dir_->file("work-dyn"), registry_->host()},
      dir_->path());
  EXPECT_EQ(dynamic.exit_code, 1);
  EXPECT_NE(dynamic.err.find("dynamically linked"), std::string::npos) << dynamic.err;
  Output tag = runCapture({kBuildImage, "--bin", PLFM_HELLO_BIN, "--work", dir_->file("work-tag"),
                           registry_->host(), "bad tag"},
                          dir_->path());
  EXPECT_EQ(tag.exit_code, 1);
  EXPECT_NE(tag.err.find("bad tag"), std::string::npos) << tag.err;
}

}  // namespace
}  // namespace plfm::hello
