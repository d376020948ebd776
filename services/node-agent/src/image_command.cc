// `plfm-node-agent image ...`: the image pipeline on its own, for operators
// and benchmarks. Progress goes to stderr, the result to stdout (a summary,
// or one JSON line with --format json).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <mutex>

#include "command_line.h"
#include "image/image_cache.h"
#include "plfm/core/json.h"
#include "plfm/core/log.h"

namespace plfm::agent {

namespace {

using image::Digest;
using image::ImageCache;

struct ImageFlags {
  std::string cache;
  std::string format = "text";
  std::string credentials;
  std::vector<std::string> insecure;
  int parallel = 3;
  uint64_t budget = 0;
  std::string platform = "linux/amd64";
  bool quiet = false;
  std::string log_level = "warn";
  image::UnpackLimits limits;  // defaults as in layer_applier.h
  std::string staging_dir;
};

int fail(const Error& e) {
  std::cerr << "plfm-node-agent: " << e.message() << "\n";
  return e.is(errc::kInvalidArgument) ? 2 : 1;
}

std::string mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

std::string secs(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2fs", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

Result<ImageCache> openCache(const ImageFlags& f) {
  log::Options lo;
  lo.component = "node-agent";
  lo.level = log::parseLevel(f.log_level).value_or(log::Level::kWarn);
  log::init(lo);
  if (f.cache.empty()) return Error(errc::kInvalidArgument, "--cache DIR is required");
  image::CacheOptions o;
  o.credentials_file = f.credentials;
  o.insecure_registries = f.insecure;
  o.parallel_downloads = f.parallel;
  if (f.budget > 0) o.size_budget_bytes = f.budget;
  o.limits = f.limits;
  o.staging_dir = f.staging_dir;
  o.fetch.max_blob_bytes = f.limits.max_layer_bytes;  // the cache takes the smaller of the two
  return ImageCache::open(f.cache, o);
}

// Per-layer progress lines on stderr, at most a few per second per layer.
class ProgressPrinter {
 public:
  void operator()(const image::PullEvent& ev) {
    using Kind = image::PullEvent::Kind;
    std::lock_guard lock(mu_);
    switch (ev.kind) {
      case Kind::kResolved:
        std::cerr << "resolved " << ev.digest.str() << " (" << ev.layers << " layers)\n";
        last_.assign(static_cast<size_t>(ev.layers), std::chrono::milliseconds(-1000));
        return;
      case Kind::kLayerProgress: {
        const auto i = static_cast<size_t>(ev.layer);
        if (i >= last_.size() || ev.elapsed - last_[i] < std::chrono::milliseconds(500)) return;
        last_[i] = ev.elapsed;
        line(ev, "fetching", mb(ev.done) + " / " + mb(ev.total));
        return;
      }
      case Kind::kLayerFetched:
        line(ev, ev.cached ? "cached  " : "fetched ", mb(ev.total));
        return;
      case Kind::kLayerApplied:
        line(ev, "applied ", mb(ev.total) + " unpacked");
        return;
      case Kind::kRootfsBuilt:
        std::cerr << "rootfs built (" << mb(ev.total) << ") " << secs(ev.elapsed) << "\n";
        return;
    }
  }

 private:
  static void line(const image::PullEvent& ev, std::string_view what, const std::string& detail) {
    std::cerr << "layer " << ev.layer + 1 << "/" << ev.layers << " " << ev.digest.shortStr() << " "
              << what << " " << detail << "  " << secs(ev.elapsed) << "\n";
  }
  std::mutex mu_;
  std::vector<std::chrono::milliseconds> last_;
};

void printImage(const image::PulledImage& img, const std::string& format) {
  if (format == "json") {
    std::cout << json::dump(img.toJson()) << std::endl;
    return;
  }
  if (!img.ref.empty()) std::cout << "image     " << img.ref << "\n";
  std::cout << "manifest  " << img.manifest_digest.str() << "\n"
            << "config    " << img.config_digest.str() << "\n"
            << "rootfs    " << img.rootfs << " (" << mb(img.rootfs_bytes) << ")\n"
            << "fetched   " << img.stats.blobs_fetched << " blobs, " << mb(img.stats.bytes_fetched)
            << " (" << img.stats.blobs_cached << " cached"
            << (img.stats.rootfs_cached ? ", rootfs cached" : "") << ") in " << img.stats.seconds
            << "s\n"
            << "run       " << json::dump(img.config.toJson()) << "\n";
}

int pull(const ImageFlags& f, const std::string& ref_text) {
  auto ref = image::parseImageRef(ref_text);
  if (!ref) return fail(ref.error());
  auto cache = openCache(f);
  if (!cache) return fail(cache.error());
  image::PullOptions po;
  const size_t slash = f.platform.find('/');
  if (slash == std::string::npos) {
    return fail(Error(errc::kInvalidArgument, "--platform must be OS/ARCH[/VARIANT]"));
  }
  po.os = f.platform.substr(0, slash);
  po.architecture = f.platform.substr(slash + 1);
  if (const size_t v = po.architecture.find('/'); v != std::string::npos) {
    po.variant = po.architecture.substr(v + 1);
    po.architecture.resize(v);
  }
  ProgressPrinter printer;
  image::ProgressFn progress;
  if (!f.quiet) progress = [&printer](const image::PullEvent& ev) { printer(ev); };
  auto img = cache->pull(*ref, po, progress);
  if (!img) return fail(img.error());
  printImage(*img, f.format);
  return 0;
}

int rootfs(const ImageFlags& f, const std::string& digest_text) {
  auto d = Digest::parse(digest_text);
  if (!d) return fail(d.error());
  auto cache = openCache(f);
  if (!cache) return fail(cache.error());
  auto path = cache->rootfs(*d);
  if (!path) return fail(path.error());
  if (f.format == "json") {
    auto img = cache->image(*d);
    if (!img) return fail(img.error());
    printImage(*img, f.format);
  } else {
    std::cout << *path << "\n";
  }
  return 0;
}

int gc(const ImageFlags& f) {
  auto cache = openCache(f);
  if (!cache) return fail(cache.error());
  auto r = cache->gc();
  if (!r) return fail(r.error());
  if (f.format == "json") {
    json::Json j = {{"bytes_before", r->bytes_before},
                    {"bytes_after", r->bytes_after},
                    {"images_removed", r->images_removed},
                    {"blobs_removed", r->blobs_removed},
                    {"images_in_use", r->images_in_use},
                    {"over_budget", r->over_budget},
                    {"unreadable_records", r->unreadable_records}};
    std::cout << json::dump(j) << std::endl;
  } else {
    std::cout << "removed " << r->images_removed << " images and " << r->blobs_removed << " blobs; "
              << mb(r->bytes_before) << " -> " << mb(r->bytes_after)
              << (r->over_budget ? " (still over budget: the rest is in use)" : "") << "\n";
  }
  return 0;
}

int list(const ImageFlags& f) {
  auto cache = openCache(f);
  if (!cache) return fail(cache.error());
  auto images = cache->list();
  if (!images) return fail(images.error());
  json::Json arr = json::Json::array();
  for (const auto& i : *images) {
    if (f.format == "json") {
      arr.push_back({{"manifest_digest", i.manifest_digest.str()},
                     {"ref", i.ref},
                     {"rootfs", i.rootfs},
                     {"bytes", i.bytes},
                     {"refs", i.refs},
                     {"last_used", toRfc3339(i.last_used)}});
    } else {
      std::cout << i.manifest_digest.str() << "  " << mb(i.bytes) << "  refs=" << i.refs << "  "
                << i.ref << "\n";
    }
  }
  if (f.format == "json") std::cout << json::dump(arr) << std::endl;
  return 0;
}

void commonFlags(CLI::App* cmd, ImageFlags& f) {
  cmd->add_option("--cache", f.cache, "image cache directory")->required();
  cmd->add_option("--format", f.format, "text|json")->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("--log-level", f.log_level, "debug|info|warn|error (logs go to stderr)");
}

// Sizes take SI or IEC units: 8G is 8e9 bytes, 8GiB is 8 * 2^30. The
// defaults (layer_applier.h, docs/specs/runtime/image-cache.md) are written
// out in the help, since CLI11 would print them as raw byte counts.
void limitFlags(CLI::App* cmd, image::UnpackLimits& l) {
  // Runs after the unit transform, so it sees a plain byte count.
  const CLI::Validator positive(
      [](std::string& v) { return v == "0" ? std::string("must be at least 1") : std::string(); },
      "", "positive");
  auto add = [&](const char* name, auto& v, const std::string& what, bool is_size, bool zero_ok) {
    CLI::Option* o = cmd->add_option(name, v, what)->group("Unpack limits");
    if (is_size) o->transform(CLI::AsSizeValue(true));
    if (!zero_ok) o->check(positive);
    o->option_text(is_size ? "SIZE" : "N");
  };
  auto size = [&](const char* name, uint64_t& v, const std::string& what) {
    add(name, v, what, true, false);
  };
  auto count = [&](const char* name, auto& v, const std::string& what) {
    add(name, v, what, false, false);
  };
  size("--max-layer-bytes", l.max_layer_bytes, "one compressed layer (default 8GiB)");
  size("--max-layer-unpacked-bytes", l.max_layer_unpacked_bytes,
       "one layer's uncompressed tar stream (default 32GiB)");
  size("--max-image-unpacked-bytes", l.max_image_unpacked_bytes,
       "all layers' uncompressed tar streams together (default 64GiB)");
  count("--max-compression-ratio", l.max_compression_ratio,
        "uncompressed/compressed bytes of a layer, past --ratio-grace-bytes (default 200)");
  add("--ratio-grace-bytes", l.ratio_grace_bytes,
      "uncompressed bytes of a layer before the ratio is enforced (default 64MiB)", true, true);
  count("--max-entries", l.max_entries, "tar entries over the whole image (default 4000000)");
  count("--max-path-bytes", l.max_path_bytes, "bytes of one entry name (default 4096)");
}

}  // namespace

void registerImageCommands(CLI::App& app, CommandAction* action) {
  auto flags = std::make_shared<ImageFlags>();
  auto ref = std::make_shared<std::string>();
  auto* image = app.add_subcommand("image", "pull images and build their ext4 rootfs");
  image->require_subcommand(1);

  auto* pullCmd =
      image->add_subcommand("pull", "pull an image into the cache and build its rootfs");
  pullCmd->add_option("ref", *ref, "registry/repo:tag, repo@sha256:..., or oci:DIR[:TAG]")
      ->required();
  commonFlags(pullCmd, *flags);
  pullCmd->add_option("--credentials", flags->credentials,
                      "registry credentials file (Docker config.json format)");
  pullCmd->add_option("--insecure-registry", flags->insecure,
                      "registry host:port to reach over plain http (repeatable)");
  pullCmd->add_option("--parallel", flags->parallel, "layers downloaded at once")
      ->check(CLI::Range(1, 16));
  pullCmd->add_option("--platform", flags->platform, "OS/ARCH[/VARIANT] to pick from an index");
  pullCmd->add_flag("-q,--quiet", flags->quiet, "no progress on stderr");
  limitFlags(pullCmd, flags->limits);
  pullCmd->add_option("--staging-dir", flags->staging_dir,
                      "where layers are unpacked before mkfs (default: /dev/shm if it has room, "
                      "else CACHE/tmp)");
  pullCmd->callback([=] { *action = [=] { return pull(*flags, *ref); }; });

  auto* rootfsCmd = image->add_subcommand("rootfs", "print the rootfs path of a cached image");
  rootfsCmd->add_option("digest", *ref, "manifest digest, sha256:...")->required();
  commonFlags(rootfsCmd, *flags);
  limitFlags(rootfsCmd, flags->limits);  // it rebuilds from cached blobs when needed
  rootfsCmd->add_option("--staging-dir", flags->staging_dir, "as for pull");
  rootfsCmd->callback([=] { *action = [=] { return rootfs(*flags, *ref); }; });

  auto* gcCmd = image->add_subcommand("gc", "evict unused images down to the size budget");
  commonFlags(gcCmd, *flags);
  gcCmd->add_option("--budget", flags->budget, "size budget (default 20GiB)")
      ->transform(CLI::AsSizeValue(true))
      ->option_text("SIZE");
  gcCmd->callback([=] { *action = [=] { return gc(*flags); }; });

  auto* listCmd = image->add_subcommand("list", "list cached images");
  commonFlags(listCmd, *flags);
  listCmd->callback([=] { *action = [=] { return list(*flags); }; });
}

}  // namespace plfm::agent
