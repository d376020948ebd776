#include "image_test_env.h"

#include "plfm/core/assert.h"

#include <cstring>
#include <random>

namespace plfm::image {

namespace t = testing;

namespace {

// Incompressible bytes, fast: the big layer must take a while to transfer.
std::string noise(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

Result<void> build(ImageEnv& env) {
  const std::string base = env.dir.path();
  env.layout = base + "/layout";
  PLFM_ASSIGN_OR_RETURN(env.registry, t::Registry::start(base + "/registry"));

  t::TarEntry tool = t::file("usr/bin/tool", "#!/bin/sh\necho tool\n", 0755);
  t::TarEntry su = t::file("usr/bin/su", "setuid", 04755);
  t::TarEntry data = t::file("home/app/data", "app data", 0640);
  data.uid = 1000;
  data.gid = 1000;
  data.xattrs = {{"user.plfm", "test"}};
  // cap_net_bind_service+ep: a vfs_cap_data v2 (magic 0x02000000 | effective,
  // then permitted/inheritable low and high words, little-endian).
  t::TarEntry ping = t::file("usr/bin/ping", "ping", 0755);
  ping.xattrs = {{"security.capability",
                  std::string("\x01\x00\x00\x02\x00\x04\x00\x00", 8) + std::string(12, '\0')}};
  // Replaced in layer 2 by an entry without xattrs: they must go with it.
  t::TarEntry passwd = t::file("etc/passwd", "root:x:0:0::/root:/bin/sh\n");
  passwd.xattrs = {{"user.lower", "gone"}};
  t::TarEntry srv = t::dir("srv");
  srv.xattrs = {{"user.dir", "on a directory"}};
  t::TarEntry home = t::dir("home/app", 0750);
  home.uid = 1000;
  home.gid = 1000;
  t::TarEntry null = t::file("dev/null", "");
  null.type = t::TarEntry::Type::kCharDev;
  null.major = 1;
  null.minor = 3;
  null.mode = 0666;
  t::TarEntry sda = null;
  sda.path = "dev/sda";
  sda.type = t::TarEntry::Type::kBlockDev;
  sda.major = 8;
  sda.minor = 0;
  sda.mode = 0660;
  sda.gid = 6;
  const std::string l1 = base + "/l1.tar.gz";
  PLFM_TRY(t::writeLayer(
      l1,
      {t::dir("etc"), passwd, t::file("etc/gone", "deleted later"), t::dir("usr"),
       t::dir("usr/bin"), tool, t::hardlink("usr/bin/tool2", "usr/bin/tool"), su, ping,
       t::symlink("bin", "usr/bin"), t::symlink("etc/alt", "/usr/bin/tool"),
       // Over 59 bytes: ext4 keeps it in a data block, not the inode.
       t::symlink("etc/long-link", kLongTarget), t::dir("var"), t::dir("var/cache"),
       t::dir("var/cache/a"), t::file("var/cache/a/x", "x"), t::file("var/cache/old", "old"),
       t::dir("home"), home, data, t::dir("dev"), null, sda, srv},
      t::Compression::kGzip));
  const std::string l2 = base + "/l2.tar.gz";
  PLFM_TRY(t::writeLayer(
      l2,
      {t::whiteout("etc/gone"), t::dir("var/cache"), t::opaque("var/cache"),
       t::file("var/cache/new", "new"),
       t::file("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
       t::hardlink("usr/bin/tool3", "usr/bin/tool"), t::symlink("etc/alt", "/usr/bin/su"),
       t::file("srv/app.conf", "port=8080\n", 0600)},
      t::Compression::kGzip));
  const std::string l3 = base + "/l3.tar";
  t::TarEntry blob = t::file("data/noise.bin", noise(6 << 20, 1), 0644);
  PLFM_TRY(t::writeLayer(l3, {t::dir("data", 0700), blob, t::whiteout("usr/bin/tool2")},
                         t::Compression::kNone));
  env.rich_spec.layer_files = {l1, l2, l3};
  env.rich_spec.compressions = {t::Compression::kGzip, t::Compression::kGzip,
                                t::Compression::kNone};
  PLFM_ASSIGN_OR_RETURN(env.rich, t::writeOciImage(env.layout, "rich", env.rich_spec));

  // A large, incompressible layer for the kill -9 test.
  const std::string lb = base + "/big.tar";
  PLFM_TRY(t::writeLayer(lb, {t::file("big.bin", noise(160 << 20, 2))}, t::Compression::kNone));
  t::ImageSpec big_spec;
  big_spec.layer_files = {l1, lb};
  big_spec.compressions = {t::Compression::kGzip, t::Compression::kNone};
  PLFM_ASSIGN_OR_RETURN(env.big, t::writeOciImage(env.layout, "big", big_spec));

  const std::string lz = base + "/small.tar.zst";
  PLFM_TRY(
      t::writeLayer(lz, {t::dir("app"), t::file("app/run", "run", 0755)}, t::Compression::kZstd));
  t::ImageSpec small_spec;
  small_spec.layer_files = {lz};
  small_spec.compressions = {t::Compression::kZstd};
  PLFM_ASSIGN_OR_RETURN(env.small, t::writeOciImage(env.layout, "small", small_spec));
  t::ImageSpec index_spec = small_spec;
  index_spec.wrap_in_index = true;
  index_spec.cmd = {"--indexed"};
  PLFM_ASSIGN_OR_RETURN(env.index, t::writeOciImage(env.layout, "index", index_spec));

  for (const char* tag : {"rich", "big", "small", "index"}) {
    PLFM_TRY(env.registry->push(env.layout, tag, std::string("plfm/") + tag + ":v1"));
  }
  return ok();
}

}  // namespace

ImageEnv& ImageEnv::get() {
  // Destroyed at exit: the registry stops, then the directory goes.
  static ImageEnv env;
  static const bool built = [] {
    if (auto r = build(env); !r) env.error = r.error().toString();
    return true;
  }();
  (void)built;
  return env;
}

ImageRef ImageEnv::ref(const std::string& repo_tag) const {
  auto r = parseImageRef(registry->host() + "/" + repo_tag);
  PLFM_ASSERT(r.has_value(), "bad test image ref");
  return *r;
}

ImageCache openCache(const plfm::testing::TempDir& dir, CacheOptions options) {
  static int n = 0;
  options.fetch.fsync = false;
  auto c = ImageCache::open(dir.path() + "/cache" + std::to_string(n++), options);
  PLFM_ASSERT(c.has_value(), "cannot open the image cache");
  return std::move(*c);
}

}  // namespace plfm::image
