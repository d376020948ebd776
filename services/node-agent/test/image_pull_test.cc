// Pulls from a real docker-registry (and OCI layouts), checked against
// `umoci unpack` of the same image and inspected inside the ext4 with
// debugfs. Auth: a bearer-token front (token_proxy.h) and htpasswd basic auth.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "image_test_env.h"
#include "plfm/core/json.h"
#include "plfm/core/process.h"
#include "plfm/http/http.h"
#include "support/token_proxy.h"
#include "support/tree_inspect.h"

namespace plfm::image {
namespace {

namespace t = testing;
using plfm::testing::TempDir;

class ImagePullTest : public ::testing::Test {
 protected:
  void SetUp() override { PLFM_REQUIRE_ENV(); }
  ImageEnv& env_ = ImageEnv::get();
  TempDir dir_{"plfm-pull"};
};

// The differences between umoci's tree and the ext4's, one line each.
std::string diffListings(const t::TreeListing& want, const t::TreeListing& got) {
  std::ostringstream diff;
  for (const auto& [path, w] : want) {
    auto it = got.find(path);
    if (it == got.end()) {
      diff << "missing in ext4: " << path << " (" << w << ")\n";
    } else if (it->second != w) {
      diff << path << ": ext4 '" << it->second << "' umoci '" << w << "'\n";
    }
  }
  for (const auto& [path, g] : got) {
    if (want.count(path) == 0) diff << "extra in ext4: " << path << " (" << g << ")\n";
  }
  return diff.str();
}

TEST_F(ImagePullTest, RichImageMatchesUmociUnpack) {
  ImageCache cache = openCache(dir_);
  std::vector<PullEvent> events;
  auto img = cache.pull(env_.ref("plfm/rich:v1"), {},
                        [&events](const PullEvent& e) { events.push_back(e); });
  ASSERT_TRUE(img) << img.error().toString();
  EXPECT_EQ(img->manifest_digest.str(), env_.rich.manifest_digest);
  EXPECT_EQ(img->config_digest.str(), env_.rich.config_digest);
  EXPECT_EQ(img->layers.size(), 3U);
  EXPECT_EQ(img->stats.blobs_fetched, 4);  // 3 layers and the config
  EXPECT_FALSE(events.empty());
  EXPECT_EQ(
      json::dump(img->config.toJson()),
      R"({"cmd":["--serve"],"entrypoint":["/bin/app"],"env":["PATH=/usr/bin:/bin","APP_MODE=test"],)"
      R"("exposed_ports":["8080/tcp"],"user":"1000:1000","workdir":"/srv"})");

  // The peer: umoci unpacks the same layout (as root: real owners and nodes).
  const std::string bundle = dir_.file("bundle");
  ASSERT_TRUE(
      t::run({"umoci", "unpack", "--image", env_.layout + ":rich", bundle}, dir_.file("umoci.log")))
      << tailFile(dir_.file("umoci.log"), 20);
  auto want = t::listHostTree(bundle + "/rootfs");
  ASSERT_TRUE(want) << want.error().toString();
  auto got = t::listExt4(img->rootfs, dir_.path());
  ASSERT_TRUE(got) << got.error().toString();
  EXPECT_EQ(diffListings(*want, *got), "");
  EXPECT_GE(want->size(), 20U);
  // Spot checks of the semantics, independent of umoci.
  EXPECT_EQ(got->count("/etc/gone"), 0U);
  EXPECT_EQ(got->count("/var/cache/old"), 0U);
  EXPECT_EQ(got->count("/usr/bin/tool2"), 0U);
  EXPECT_EQ(got->at("/dev/null"), "chardev 0666 0:0 1,3");
  EXPECT_EQ(got->at("/dev/sda"), "blockdev 0660 0:6 8,0");
  EXPECT_EQ(got->at("/usr/bin/su"), "file 4755 0:0 6");
  EXPECT_EQ(got->at("/etc/alt"), "symlink 0777 0:0 -> /usr/bin/su");
  EXPECT_NE(got->at("/usr/bin/tool3").find("link=/usr/bin/tool"), std::string::npos);
  EXPECT_EQ(got->at("/etc/long-link"), std::string("symlink 0777 0:0 -> ") + kLongTarget);
  // xattrs (PAX SCHILY.xattr) land in the ext4; a replaced file loses its own.
  EXPECT_EQ(got->at("/home/app/data"), "file 0640 1000:1000 8 xattr user.plfm=\"test\"");
  EXPECT_EQ(got->at("/usr/bin/ping"),
            "file 0755 0:0 4 xattr security.capability="
            "01 00 00 02 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
  EXPECT_EQ(got->at("/srv"), "dir 0755 0:0 xattr user.dir=\"on a directory\"");
  EXPECT_EQ(got->at("/etc/passwd").find("xattr"), std::string::npos) << got->at("/etc/passwd");
  auto passwd = t::catExt4(img->rootfs, "/etc/passwd", dir_.path());
  ASSERT_TRUE(passwd);
  EXPECT_NE(passwd->find("app:x:1000"), std::string::npos);
  EXPECT_TRUE(t::run({"e2fsck", "-fn", img->rootfs}, dir_.file("fsck.log")))
      << tailFile(dir_.file("fsck.log"), 20);

  // A second pull is served from the cache.
  auto again = cache.pull(env_.ref("plfm/rich:v1"));
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->stats.rootfs_cached);
  EXPECT_EQ(again->stats.blobs_fetched, 0);
  EXPECT_EQ(again->rootfs, img->rootfs);
}

TEST_F(ImagePullTest, OciLayoutGivesTheSameImage) {
  ImageCache cache = openCache(dir_);
  auto ref = parseImageRef("oci:" + env_.layout + ":rich");
  ASSERT_TRUE(ref);
  auto img = cache.pull(*ref);
  ASSERT_TRUE(img) << img.error().toString();
  EXPECT_EQ(img->manifest_digest.str(), env_.rich.manifest_digest);
  // A layout as skopeo writes it, copied out of the registry.
  const std::string copied = dir_.file("skopeo-layout");
  ASSERT_TRUE(
      t::run({"skopeo", "copy", "--src-tls-verify=false",
              "docker://" + env_.registry->host() + "/plfm/small:v1", "oci:" + copied + ":s"},
             dir_.file("skopeo.log")))
      << tailFile(dir_.file("skopeo.log"), 10);
  auto from_skopeo = cache.pull(*parseImageRef("oci:" + copied + ":s"));
  ASSERT_TRUE(from_skopeo) << from_skopeo.error().toString();
  EXPECT_EQ(from_skopeo->manifest_digest.str(), env_.small.manifest_digest);
  auto untagged = cache.pull(*parseImageRef("oci:" + copied));  // one image: no tag needed
  ASSERT_TRUE(untagged) << untagged.error().toString();

  auto missing = cache.pull(*parseImageRef("oci:" + env_.layout + ":ricj"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("did you mean 'rich'"), std::string::npos);
}

TEST_F(ImagePullTest, LayoutWrittenByUmoci) {
  // Every layer and the config written by umoci itself: repack diffs a
  // bundle (deletions become whiteouts), insert adds a tree (--opaque) or a
  // whiteout, config sets the runtime fields.
  const std::string layout = dir_.file("umoci-layout");
  const std::string image = layout + ":app";
  const std::string bundle = dir_.file("umoci-bundle");
  const std::string rootfs = bundle + "/rootfs";
  const std::string log = dir_.file("umoci-build.log");
  auto umoci = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "umoci");
    auto r = t::run(args, log);
    EXPECT_TRUE(r) << args[1] << ": " << r.error().toString() << "\n" << tailFile(log, 10);
    return r.has_value();
  };
  auto put = [](const std::string& path, const std::string& content, mode_t mode = 0644) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    EXPECT_TRUE(writeFileAtomic(path, content));
    ::chmod(path.c_str(), mode);
  };
  ASSERT_TRUE(umoci({"init", "--layout", layout}));
  ASSERT_TRUE(umoci({"new", "--image", image}));
  // Layer 1 (repack): files, a hardlink, a symlink, an owned directory.
  ASSERT_TRUE(umoci({"unpack", "--image", image, bundle}));
  put(rootfs + "/etc/hostname", "base\n");
  put(rootfs + "/usr/bin/app", "#!/bin/sh\necho app\n", 0755);
  ASSERT_EQ(::link((rootfs + "/usr/bin/app").c_str(), (rootfs + "/usr/bin/app2").c_str()), 0);
  ASSERT_EQ(::symlink("app", (rootfs + "/usr/bin/sh").c_str()), 0);
  put(rootfs + "/var/lib/old/file", "old");
  put(rootfs + "/var/lib/keep", "keep");
  put(rootfs + "/opt/lower/a", "lower");
  put(rootfs + "/home/app/data", "data", 0600);
  ASSERT_EQ(::chown((rootfs + "/home/app").c_str(), 1000, 1000), 0);
  ASSERT_EQ(::chown((rootfs + "/home/app/data").c_str(), 1000, 1000), 0);
  ASSERT_TRUE(umoci({"repack", "--image", image, bundle}));
  // Layer 2 (repack): a deletion and a change.
  std::filesystem::remove_all(bundle);
  ASSERT_TRUE(umoci({"unpack", "--image", image, bundle}));
  std::filesystem::remove_all(rootfs + "/var/lib/old");
  put(rootfs + "/etc/hostname", "changed\n");
  ASSERT_TRUE(umoci({"repack", "--image", image, bundle}));
  // Layers 3 and 4 (insert): an opaque directory and a whiteout.
  put(dir_.file("opt-src/upper/b"), "upper");
  ASSERT_TRUE(umoci({"insert", "--image", image, "--opaque", dir_.file("opt-src"), "/opt"}));
  ASSERT_TRUE(umoci({"insert", "--image", image, "--whiteout", "/usr/bin/app2"}));
  ASSERT_TRUE(umoci({"config", "--image", image, "--config.entrypoint", "/usr/bin/app",
                     "--config.cmd", "serve", "--config.env", "MODE=umoci", "--config.workingdir",
                     "/srv", "--config.user", "1000:1000", "--config.exposedports", "9090/tcp",
                     "--os", "linux", "--architecture", "amd64"}));

  ImageCache cache = openCache(dir_);
  auto img = cache.pull(*parseImageRef("oci:" + image));
  ASSERT_TRUE(img) << img.error().toString();
  EXPECT_EQ(img->layers.size(), 4U);
  EXPECT_EQ(img->config.entrypoint, std::vector<std::string>{"/usr/bin/app"});
  EXPECT_EQ(img->config.cmd, std::vector<std::string>{"serve"});
  EXPECT_NE(std::find(img->config.env.begin(), img->config.env.end(), "MODE=umoci"),
            img->config.env.end());
  EXPECT_EQ(img->config.workdir, "/srv");
  EXPECT_EQ(img->config.user, "1000:1000");
  EXPECT_EQ(img->config.exposed_ports, std::vector<std::string>{"9090/tcp"});

  auto got = t::listExt4(img->rootfs, dir_.path());
  ASSERT_TRUE(got) << got.error().toString();
  const std::string check = dir_.file("umoci-check");
  ASSERT_TRUE(umoci({"unpack", "--image", image, check}));
  auto want = t::listHostTree(check + "/rootfs");
  ASSERT_TRUE(want) << want.error().toString();
  EXPECT_EQ(diffListings(*want, *got), "");
  EXPECT_EQ(got->count("/var/lib/old"), 0U);
  EXPECT_EQ(got->count("/usr/bin/app2"), 0U);
  EXPECT_EQ(got->count("/opt/lower"), 0U);
  EXPECT_EQ(got->at("/opt/upper/b"), "file 0644 0:0 5");
  EXPECT_EQ(got->at("/usr/bin/sh"), "symlink 0777 0:0 -> app");
  EXPECT_EQ(got->at("/home/app/data"), "file 0600 1000:1000 4");
  EXPECT_EQ(*t::catExt4(img->rootfs, "/etc/hostname", dir_.path()), "changed\n");
  EXPECT_TRUE(t::run({"e2fsck", "-fn", img->rootfs}, dir_.file("fsck.log")))
      << tailFile(dir_.file("fsck.log"), 20);

  // The same layout through the registry gives the same image.
  ASSERT_TRUE(env_.registry->push(layout, "app", "plfm/umoci:v1"));
  auto pulled = cache.pull(env_.ref("plfm/umoci:v1"));
  ASSERT_TRUE(pulled) << pulled.error().toString();
  EXPECT_EQ(pulled->manifest_digest, img->manifest_digest);
  EXPECT_TRUE(pulled->stats.rootfs_cached);
}

TEST_F(ImagePullTest, IndexPicksLinuxAmd64AndDigestRefsWork) {
  ImageCache cache = openCache(dir_);
  auto img = cache.pull(env_.ref("plfm/index:v1"));
  ASSERT_TRUE(img) << img.error().toString();
  EXPECT_EQ(img->manifest_digest.str(), env_.index.manifest_digest);
  EXPECT_EQ(img->config.cmd, std::vector<std::string>{"--indexed"});  // not "--arm64"
  // By digest (of the index), through the same code path.
  auto pinned = cache.pull(env_.ref("plfm/index@" + env_.index.top_digest));
  ASSERT_TRUE(pinned) << pinned.error().toString();
  EXPECT_EQ(pinned->manifest_digest, img->manifest_digest);
  PullOptions arm;
  arm.architecture = "s390x";
  auto none = cache.pull(env_.ref("plfm/index:v1"), arm);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("linux/amd64"), std::string::npos);
}

// A pinned image pulled once starts again with its registry gone: nothing
// about a digest can change, so the manifest comes from the blob store. A tag
// still has to ask the registry.
TEST_F(ImagePullTest, PinnedImageAlreadyPulledNeedsNoRegistry) {
  ImageCache cache = openCache(dir_);
  const std::string pinned = "plfm/index@" + env_.index.top_digest;
  auto first = cache.pull(env_.ref(pinned));
  ASSERT_TRUE(first) << first.error().toString();
  auto offline = parseImageRef("127.0.0.1:9/" + pinned);  // nothing listens on port 9
  ASSERT_TRUE(offline) << offline.error().toString();
  auto again = cache.pull(*offline);
  ASSERT_TRUE(again) << again.error().toString();
  EXPECT_EQ(again->manifest_digest, first->manifest_digest);
  EXPECT_EQ(again->rootfs, first->rootfs);
  EXPECT_EQ(again->stats.blobs_fetched, 0);
  auto tag = parseImageRef("127.0.0.1:9/plfm/index:v1");
  ASSERT_TRUE(tag);
  EXPECT_FALSE(cache.pull(*tag));
}

// docs/security.md, "Node: image references are tenant input": a digest in
// the cache is no proof that an org may run it. Org A pulls a private image
// with its credentials; org B, naming the same digest, is refused without
// credentials of its own although every blob is on the node; with them it
// starts without downloading a layer again (the registry saw HEADs only).
TEST_F(ImagePullTest, ACachedDigestIsServedToAnOrgOnlyAfterTheRegistryServesItToThatOrg) {
  auto proxy = t::TokenProxy::start(env_.registry->host(), "org-a-bot", "a-s3cret");
  ASSERT_TRUE(proxy) << proxy.error().toString();
  (*proxy)->addUser("org-b-bot", "b-s3cret");
  ImageCache cache = openCache(dir_);
  for (const std::string& top : {env_.index.top_digest, env_.rich.manifest_digest}) {
    SCOPED_TRACE(top);
    const std::string pinned =
        (top == env_.index.top_digest ? "/plfm/index@" : "/plfm/rich@") + top;
    auto ref = parseImageRef((*proxy)->host() + pinned);
    ASSERT_TRUE(ref) << ref.error().toString();
    PullOptions a;
    a.scope = "org_a";
    a.credentials = RegistryCredentials{"org-a-bot", "a-s3cret"};
    auto first = cache.pull(*ref, a);
    ASSERT_TRUE(first) << first.error().toString();
    EXPECT_GT(first->stats.blobs_fetched, 0);

    // Org B without credentials: refused, though everything is cached.
    PullOptions b;
    b.scope = "org_b";
    auto denied = cache.pull(*ref, b);
    ASSERT_FALSE(denied) << "org B ran org A's private image from the cache";
    EXPECT_EQ(denied.error().code(), "unauthenticated") << denied.error().toString();
    // Nor through a ref at another registry (nothing listens on port 9).
    auto elsewhere = parseImageRef("127.0.0.1:9" + pinned);
    ASSERT_TRUE(elsewhere);
    EXPECT_FALSE(cache.pull(*elsewhere, b));
    // Org A was authorized: its next start needs no registry at all.
    auto offline = cache.pull(*elsewhere, a);
    ASSERT_TRUE(offline) << offline.error().toString();
    EXPECT_EQ(offline->manifest_digest, first->manifest_digest);

    // Org B with its own credentials: allowed, and no layer is downloaded.
    const int gets = (*proxy)->blobGets();
    const int heads = (*proxy)->blobHeads();
    b.credentials = RegistryCredentials{"org-b-bot", "b-s3cret"};
    auto allowed = cache.pull(*ref, b);
    ASSERT_TRUE(allowed) << allowed.error().toString();
    EXPECT_EQ(allowed->manifest_digest, first->manifest_digest);
    EXPECT_EQ(allowed->stats.blobs_fetched, 0);
    EXPECT_EQ((*proxy)->blobGets(), gets);
    EXPECT_EQ((*proxy)->blobHeads() - heads, static_cast<int>(first->layers.size()) + 1);
    // Recorded: B's next start is offline too; an unknown scope still is not.
    EXPECT_TRUE(cache.pull(*elsewhere, b));
    PullOptions c;
    c.scope = "org_c";
    EXPECT_FALSE(cache.pull(*elsewhere, c));
  }
  // Scopes name files: anything but an org id is refused.
  PullOptions bad;
  bad.scope = "../../etc";
  auto r =
      cache.pull(*parseImageRef((*proxy)->host() + "/plfm/rich@" + env_.rich.manifest_digest), bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::kInvalidArgument);
}

// A registry's error body is the registry's text, and the registry is the
// tenant's choice: only a short, escaped excerpt may reach the error (and so
// an instance's reason, which the agent builds from it).
TEST_F(ImagePullTest, ARegistrysErrorBodyReachesTheErrorOnlyShortAndEscaped) {
  const std::string beyond = "CANARY-beyond-the-excerpt";
  const std::string hostile = "\x1b[31mred\x1b[0m\r\nX-Injected: 1\n\x07" + std::string(300, 'A') +
                              beyond + std::string(size_t{64} << 10, 'B');
  for (const int status : {404, 500, 401}) {
    SCOPED_TRACE(status);
    http::ServerOptions o;
    o.listen = {"127.0.0.1:0"};
    http::Server server(o, [&](http::Request&) { return http::Response::text(status, hostile); });
    ASSERT_TRUE(server.start());
    ImageCache cache = openCache(dir_);
    auto r = cache.pull(*parseImageRef(server.endpoints().front() + "/plfm/x:v1"));
    server.stop(std::chrono::milliseconds(100));
    ASSERT_FALSE(r);
    const std::string all = r.error().toString();
    EXPECT_LT(all.size(), 600U) << all;
    EXPECT_EQ(all.find(beyond), std::string::npos) << all;
    for (const char c : all) {
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "control byte " << int(c) << " in " << all;
    }
    if (status != 401) {
      EXPECT_NE(all.find("HTTP " + std::to_string(status)), std::string::npos) << all;
      EXPECT_NE(all.find("red"), std::string::npos) << "the excerpt is kept, escaped: " << all;
    }
  }
}

TEST_F(ImagePullTest, DockerSchema2) {
  // Docker schema2 has no zstd: a gzip image, converted by skopeo on push.
  const std::string layer = dir_.file("gz.tar.gz");
  ASSERT_TRUE(t::writeLayer(layer, {t::dir("app"), t::file("app/run", "run", 0755)},
                            t::Compression::kGzip));
  t::ImageSpec spec;
  spec.layer_files = {layer};
  ASSERT_TRUE(t::writeOciImage(dir_.file("layout"), "gz", spec));
  auto pushed = env_.registry->push(dir_.file("layout"), "gz", "plfm/docker:v1", "v2s2");
  ASSERT_TRUE(pushed) << pushed.error().toString();
  ImageCache cache = openCache(dir_);
  auto img = cache.pull(env_.ref("plfm/docker:v1"));
  ASSERT_TRUE(img) << img.error().toString();
  auto bytes = cache.blobs().read(img->manifest_digest);
  ASSERT_TRUE(bytes);
  EXPECT_NE(bytes->find("application/vnd.docker.distribution.manifest.v2+json"), std::string::npos);
  auto got = t::listExt4(img->rootfs, dir_.path());
  ASSERT_TRUE(got);
  EXPECT_EQ(got->at("/app/run"), "file 0755 0:0 3");
}

TEST_F(ImagePullTest, DockerManifestListPicksLinuxAmd64) {
  // An index (arm64 and amd64 entries) converted by skopeo to a Docker
  // manifest list of schema2 manifests on push.
  const std::string layer = dir_.file("gz.tar.gz");
  ASSERT_TRUE(t::writeLayer(layer, {t::dir("app"), t::file("app/listed", "amd64", 0755)},
                            t::Compression::kGzip));
  t::ImageSpec spec;
  spec.layer_files = {layer};
  spec.wrap_in_index = true;
  spec.cmd = {"--from-list"};
  ASSERT_TRUE(t::writeOciImage(dir_.file("layout"), "list", spec));
  auto pushed = env_.registry->push(dir_.file("layout"), "list", "plfm/dlist:v1", "v2s2");
  ASSERT_TRUE(pushed) << pushed.error().toString();
  ImageCache cache = openCache(dir_);
  auto img = cache.pull(env_.ref("plfm/dlist:v1"));
  ASSERT_TRUE(img) << img.error().toString();
  EXPECT_EQ(img->config.cmd, std::vector<std::string>{"--from-list"});
  auto record = json::parse(*readFile(cache.recordPath(img->manifest_digest)));
  ASSERT_TRUE(record && record->contains("index_digest"))
      << *readFile(cache.recordPath(img->manifest_digest));
  auto list = cache.blobs().read(*Digest::parse((*record)["index_digest"].get<std::string>()));
  ASSERT_TRUE(list);
  EXPECT_NE(list->find("application/vnd.docker.distribution.manifest.list.v2+json"),
            std::string::npos)
      << *list;
  auto manifest = cache.blobs().read(img->manifest_digest);
  ASSERT_TRUE(manifest);
  EXPECT_NE(manifest->find("application/vnd.docker.distribution.manifest.v2+json"),
            std::string::npos);
  auto got = t::listExt4(img->rootfs, dir_.path());
  ASSERT_TRUE(got);
  EXPECT_EQ(got->at("/app/listed"), "file 0755 0:0 5");
  // The list's other entry is a different manifest, chosen by --platform.
  PullOptions arm;
  arm.architecture = "arm64";
  auto arm_img = cache.pull(env_.ref("plfm/dlist:v1"), arm);
  ASSERT_TRUE(arm_img) << arm_img.error().toString();
  EXPECT_NE(arm_img->manifest_digest, img->manifest_digest);
  EXPECT_EQ(arm_img->config.cmd, std::vector<std::string>{"--arm64"});
}

TEST_F(ImagePullTest, RegistriesAtNonPublicAddressesNeedTheOperatorsAllowance) {
  // The test registry is on loopback, like a tenant naming the node's own
  // services or a private network would be.
  auto ref = parseImageRef(env_.registry->host() + "/plfm/small:v1");
  ASSERT_TRUE(ref);
  CacheOptions strict;
  strict.registry_allow_cidrs = std::vector<std::string>{};
  strict.allow_oci_layout = false;
  ImageCache refused = openCache(dir_, strict);
  auto r = refused.pull(*ref);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), "image.registry_refused");
  EXPECT_NE(r.error().message().find("127.0.0.1"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("--registry-allow-cidr"), std::string::npos);
  // oci: names a directory on the node: refused the same way.
  auto layout = refused.pull(*parseImageRef("oci:" + env_.layout + ":rich"));
  ASSERT_FALSE(layout);
  EXPECT_EQ(layout.error().code(), "image.ref_refused");

  // The control: allowed by the operator, through a token front whose
  // realm and blob redirects are checked on every connection too.
  auto proxy = t::TokenProxy::start(env_.registry->host());
  ASSERT_TRUE(proxy) << proxy.error().toString();
  CacheOptions allowed = strict;
  allowed.registry_allow_cidrs = std::vector<std::string>{"127.0.0.0/8"};
  ImageCache ok = openCache(dir_, allowed);
  auto img = ok.pull(*parseImageRef((*proxy)->host() + "/plfm/small:v1"));
  ASSERT_TRUE(img) << img.error().toString();
  EXPECT_EQ(img->manifest_digest.str(), env_.small.manifest_digest);
  EXPECT_GE((*proxy)->redirects(), 1);
}

TEST_F(ImagePullTest, BearerTokenChallengeFlowWithRedirects) {
  auto proxy = t::TokenProxy::start(env_.registry->host(), "puller", "s3cret");
  ASSERT_TRUE(proxy) << proxy.error().toString();
  const std::string creds = dir_.file("creds.json");
  ASSERT_TRUE(writeFileAtomic(creds, R"({"auths":{")" + (*proxy)->host() +
                                         R"(":{"username":"puller","password":"s3cret"}}})"));
  CacheOptions o;
  o.credentials_file = creds;
  ImageCache cache = openCache(dir_, o);
  auto ref = parseImageRef((*proxy)->host() + "/plfm/rich:v1");
  ASSERT_TRUE(ref);
  auto img = cache.pull(*ref);
  ASSERT_TRUE(img) << img.error().toString();
  EXPECT_EQ(img->manifest_digest.str(), env_.rich.manifest_digest);
  EXPECT_GE((*proxy)->challenges(), 1);
  EXPECT_EQ((*proxy)->tokensIssued(), 1);  // parallel downloads share the token
  EXPECT_EQ((*proxy)->redirects(), 4);     // config and 3 layers, each redirected

  // Without the credentials the token endpoint refuses: a clear error.
  ImageCache anon = openCache(dir_);
  auto denied = anon.pull(*ref);
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code(), "unauthenticated");
  EXPECT_EQ(denied.error().message().find("s3cret"), std::string::npos);
}

TEST_F(ImagePullTest, BasicAuthFromCredentialsFile) {
  t::RegistryOptions ro;
  ro.username = "alice";
  ro.password = "wonder-land";
  auto reg = t::Registry::start(dir_.file("authreg"), ro);
  ASSERT_TRUE(reg) << reg.error().toString();
  ASSERT_TRUE((*reg)->push(env_.layout, "small", "team/small:v1"));
  auto ref = parseImageRef((*reg)->host() + "/team/small:v1");
  ASSERT_TRUE(ref);

  ImageCache anon = openCache(dir_);
  auto denied = anon.pull(*ref);
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code(), "unauthenticated");
  EXPECT_NE(denied.error().message().find("credentials"), std::string::npos);

  const std::string creds = dir_.file("creds.json");
  // base64("alice:wonder-land")
  ASSERT_TRUE(writeFileAtomic(
      creds, R"({"auths":{")" + (*reg)->host() + R"(":{"auth":"YWxpY2U6d29uZGVyLWxhbmQ="}}})"));
  CacheOptions o;
  o.credentials_file = creds;
  ImageCache cache = openCache(dir_, o);
  auto img = cache.pull(*ref);
  ASSERT_TRUE(img) << img.error().toString();
  EXPECT_EQ(img->manifest_digest.str(), env_.small.manifest_digest);
}

TEST_F(ImagePullTest, CorruptRegistryBlobFailsNamingTheDigest) {
  // A layer only this test uses, so corrupting it in the registry's storage
  // affects nothing else.
  const std::string layer = dir_.file("unique.tar.gz");
  ASSERT_TRUE(t::writeLayer(layer, {t::file("unique", std::to_string(::getpid()) + "-corrupt")},
                            t::Compression::kGzip));
  t::ImageSpec spec;
  spec.layer_files = {layer};
  const std::string layout = dir_.file("layout");
  auto built = t::writeOciImage(layout, "c", spec);
  ASSERT_TRUE(built);
  ASSERT_TRUE(env_.registry->push(layout, "c", "plfm/corrupt:v1"));
  auto manifest = readFile(layout + "/blobs/sha256/" + built->manifest_digest.substr(7));
  auto doc = parseManifestDocument(*manifest);
  ASSERT_TRUE(doc && doc->manifest);
  const Digest layer_digest = doc->manifest->layers[0].digest;
  const std::string data = env_.registry->blobDataPath(layer_digest.hex());
  auto original = readFile(data);
  ASSERT_TRUE(original) << data;
  std::string bad = *original;
  bad[bad.size() / 2] ^= 0x55;
  ASSERT_TRUE(writeFileAtomic(data, bad));

  ImageCache cache = openCache(dir_);
  auto r = cache.pull(env_.ref("plfm/corrupt:v1"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), "image.digest_mismatch");
  EXPECT_NE(r.error().message().find(layer_digest.str()), std::string::npos) << r.error().message();
  EXPECT_FALSE(cache.blobs().has(layer_digest));
  EXPECT_FALSE(std::ifstream(cache.blobs().partialPath(layer_digest)).good());
}

TEST_F(ImagePullTest, CommandLinePullAndRootfs) {
  const std::string cache_dir = dir_.file("clicache");
  const std::string out = dir_.file("pull.out");
  SpawnOptions so;
  so.stdout_path = out;
  so.stderr_path = dir_.file("pull.err");
  ASSERT_TRUE(
      runChecked({PLFM_NODE_AGENT_BIN, "image", "pull", env_.registry->host() + "/plfm/small:v1",
                  "--cache", cache_dir, "--format", "json"},
                 so))
      << tailFile(so.stderr_path, 20);
  auto j = json::parse(*readFile(out));
  ASSERT_TRUE(j) << *readFile(out);
  EXPECT_EQ((*j)["manifest_digest"], env_.small.manifest_digest);
  EXPECT_NE(readFile(so.stderr_path)->find("layer 1/1"), std::string::npos);  // progress
  const std::string out2 = dir_.file("rootfs.out");
  so.stdout_path = out2;
  ASSERT_TRUE(runChecked(
      {PLFM_NODE_AGENT_BIN, "image", "rootfs", env_.small.manifest_digest, "--cache", cache_dir},
      so));
  EXPECT_EQ(*readFile(out2), (*j)["rootfs"].get<std::string>() + "\n");
  // Unknown digest: a clear error and exit code 1.
  auto p = spawn({PLFM_NODE_AGENT_BIN, "image", "rootfs", "sha256:" + std::string(64, '0'),
                  "--cache", cache_dir},
                 so);
  ASSERT_TRUE(p);
  EXPECT_EQ(exitCodeOf(p->wait()), 1);
  EXPECT_NE(tailFile(so.stderr_path, 1).find("not in the cache"), std::string::npos);
  // A usage error (a missing argument, an unknown flag) exits 2 and says what is wrong.
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{PLFM_NODE_AGENT_BIN, "image", "rootfs"},
        std::vector<std::string>{PLFM_NODE_AGENT_BIN, "image", "pull", "x", "--no-such-flag"}}) {
    auto usage = spawn(argv, so);
    ASSERT_TRUE(usage);
    EXPECT_EQ(exitCodeOf(usage->wait()), 2) << argv.back();
    EXPECT_FALSE(tailFile(so.stderr_path, 5).empty());
  }
}

TEST_F(ImagePullTest, CommandLineUnpackLimits) {
  const std::string cache_dir = dir_.file("limitcache");
  SpawnOptions so;
  so.stdout_path = dir_.file("limit.out");
  so.stderr_path = dir_.file("limit.err");
  auto pullWith = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {
        PLFM_NODE_AGENT_BIN, "image",   "pull", env_.registry->host() + "/plfm/rich:v1",
        "--cache",           cache_dir, "-q"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = spawn(argv, so);
    return p ? exitCodeOf(p->wait()) : -1;
  };
  // The rich image unpacks to about 6 MiB.
  EXPECT_EQ(pullWith({"--max-image-unpacked-bytes", "1MiB"}), 1);
  EXPECT_NE(readFile(so.stderr_path)->find("limit max_image_unpacked_bytes = 1048576"),
            std::string::npos)
      << *readFile(so.stderr_path);
  EXPECT_EQ(pullWith({"--max-path-bytes", "8"}), 1);
  EXPECT_NE(readFile(so.stderr_path)->find("max_path_bytes = 8"), std::string::npos)
      << *readFile(so.stderr_path);
  EXPECT_EQ(pullWith({"--max-layer-bytes", "1k"}), 1);
  EXPECT_NE(readFile(so.stderr_path)->find("the limit is 1000"), std::string::npos)
      << *readFile(so.stderr_path);
  EXPECT_NE(pullWith({"--max-entries", "0"}), 0);  // rejected while parsing
  EXPECT_NE(readFile(so.stderr_path)->find("must be at least 1"), std::string::npos);
  // Generous limits, in units: the pull goes through.
  EXPECT_EQ(pullWith({"--max-image-unpacked-bytes", "64MiB", "--max-layer-bytes", "1GiB",
                      "--max-entries", "1000", "--ratio-grace-bytes", "0"}),
            0)
      << *readFile(so.stderr_path);
}

}  // namespace
}  // namespace plfm::image
