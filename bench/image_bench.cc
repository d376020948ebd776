// image_bench: times image -> bootable ext4 rootfs for a realistic image
// (several gzip layers of Debian files, well over 100 MB unpacked) pulled
// from a real docker-registry on loopback, side by side in one run with the
// peer pipeline that does the same job with stock tools:
//
//   ours:  plfm-node-agent image pull REF --cache EMPTY_DIR
//   peer:  skopeo copy docker://REF oci:DIR:TAG
//          umoci unpack --image DIR:TAG BUNDLE
//          mkfs.ext4 -d BUNDLE/rootfs (the same flags and size as ours)
//
// Each run starts from an empty cache; runs alternate between the two so
// that neither always gets the warmer page cache. Prints medians, the
// speedup and peak RSS (ru_maxrss of the processes; the peer's is the
// largest of its three steps).
//
//   bench/image_bench [--runs N] [--peer-tmpfs] [--keep]
//
// --peer-tmpfs puts the peer's OCI layout and unpacked bundle on /dev/shm, as
// ours puts its staging tree there, so that neither pays for host disk writes
// of the intermediate tree.
//
// Figures go to docs/benchmarks.md; nothing here asserts on time.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "plfm/core/json.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "support/registry_fixture.h"
#include "support/test_image.h"

using namespace plfm;  // NOLINT(google-build-using-namespace)
namespace t = plfm::image::testing;
using Steady = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "image_bench: %s\n", what.c_str());
  std::exit(1);
}

struct Timed {
  double seconds = 0;
  long max_rss_kb = 0;
};

// Runs argv to completion, measuring wall time and the child's peak RSS.
Timed timed(const std::vector<std::string>& argv, const std::string& log) {
  SpawnOptions so;
  so.stdout_path = log;
  so.stderr_path = log + ".err";
  const auto start = Steady::now();
  auto p = spawn(argv, so);
  if (!p) die(p.error().toString());
  int status = 0;
  rusage ru{};
  const pid_t pid = p->release();
  while (::wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) die("wait4 failed");
  }
  Timed out;
  out.seconds = std::chrono::duration<double>(Steady::now() - start).count();
  out.max_rss_kb = ru.ru_maxrss;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    die("'" + argv[0] + " " + argv[1] + "' " + describeWaitStatus(status) + ":\n" +
        tailFile(log + ".err", 20) + tailFile(log, 20));
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

uint64_t treeBytes(const std::string& root) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) total += it->file_size(ec);
  }
  return total;
}

struct Layer {
  std::string name;
  std::vector<std::string> paths;  // relative to /
};

}  // namespace

int main(int argc, char** argv) {
  int runs = 3;
  bool keep = false;
  bool peer_tmpfs = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--keep") {
      keep = true;
    } else if (a == "--peer-tmpfs") {
      peer_tmpfs = true;
    } else {
      die("usage: image_bench [--runs N] [--peer-tmpfs] [--keep]");
    }
  }
  plfm::testing::TempDir dir("plfm-imgbench");
  if (keep) dir.keep();

  // A realistic image from this machine's Debian files: a base layer of
  // shared libraries and data, a language runtime with thousands of small
  // files, an application layer, and a small layer that deletes things.
  const std::vector<Layer> layers = {
      {"base",
       {"usr/lib/x86_64-linux-gnu/perl", "usr/lib/x86_64-linux-gnu/perl-base", "usr/share/perl",
        "usr/share/zoneinfo", "usr/share/i18n"}},
      {"runtime", {"usr/lib/python3.11"}},
      {"app", {"usr/share/cmake-3.25", "usr/share/doc"}},
  };
  const std::string layout = dir.file("layout");
  t::ImageSpec spec;
  std::fprintf(stderr, "building the image (gzip -6 layers)...\n");
  for (const auto& l : layers) {
    std::vector<std::string> present;
    for (const auto& p : l.paths) {
      if (std::filesystem::exists("/" + p)) present.push_back(p);
    }
    if (present.empty()) die("none of the paths of layer " + l.name + " exist here");
    const std::string tar = dir.file(l.name + ".tar");
    if (auto r = t::writeLayerFromDir(tar, "", present, t::Compression::kNone); !r) {
      die(r.error().toString());
    }
    if (auto r = t::compressFile(tar, tar + ".gz", t::Compression::kGzip, 6); !r) {
      die(r.error().toString());
    }
    std::filesystem::remove(tar);
    spec.layer_files.push_back(tar + ".gz");
    spec.compressions.push_back(t::Compression::kGzip);
  }
  const std::string last = dir.file("cleanup.tar.gz");
  if (auto r = t::writeLayer(
          last, {t::whiteout("usr/share/doc/cmake-3.25"), t::file("etc/app.conf", "mode=bench\n")},
          t::Compression::kGzip);
      !r) {
    die(r.error().toString());
  }
  spec.layer_files.push_back(last);
  spec.compressions.push_back(t::Compression::kGzip);
  auto built = t::writeOciImage(layout, "bench", spec);
  if (!built) die(built.error().toString());
  uint64_t compressed = 0;
  for (const auto& f : spec.layer_files) compressed += std::filesystem::file_size(f);

  auto registry = t::Registry::start(dir.file("registry"));
  if (!registry) die(registry.error().toString());
  if (auto r = (*registry)->push(layout, "bench", "bench/image:v1"); !r) die(r.error().toString());
  const std::string ref = (*registry)->host() + "/bench/image:v1";

  std::vector<double> ours_s, peer_s, skopeo_s, umoci_s, mkfs_s;
  long ours_rss = 0, peer_rss = 0;
  uint64_t unpacked = 0, rootfs_bytes = 0;
  for (int run = 0; run < runs; ++run) {
    const std::string rd = dir.file("run" + std::to_string(run));
    std::filesystem::create_directories(rd);
    auto runOurs = [&] {
      const std::string out = rd + "/ours.json";
      Timed o = timed({PLFM_NODE_AGENT_BIN, "image", "pull", ref, "--cache", rd + "/cache", "-q",
                       "--format", "json"},
                      out);
      ours_s.push_back(o.seconds);
      ours_rss = std::max(ours_rss, o.max_rss_kb);
      auto j = json::parse(*readFile(out));
      if (!j) die("bad JSON from plfm-node-agent");
      rootfs_bytes = (*j)["rootfs_bytes"].get<uint64_t>();
      std::filesystem::remove_all(rd + "/cache");
    };
    const std::string pd =
        peer_tmpfs ? "/dev/shm/plfm-bench-peer-" + std::to_string(::getpid()) : rd;
    std::filesystem::create_directories(pd);
    auto runPeer = [&] {
      const auto start = Steady::now();
      Timed s = timed({"skopeo", "copy", "--src-tls-verify=false", "docker://" + ref,
                       "oci:" + pd + "/peer-layout:bench"},
                      rd + "/skopeo.log");
      Timed u = timed({"umoci", "unpack", "--image", pd + "/peer-layout:bench", pd + "/bundle"},
                      rd + "/umoci.log");
      unpacked = treeBytes(pd + "/bundle/rootfs");
      // The same mkfs invocation and image size as ours, so that only the
      // way to the tree differs.
      const uint64_t size_kb = std::max<uint64_t>(rootfs_bytes, unpacked * 5 / 4) / 1024;
      Timed m = timed({"mkfs.ext4",
                       "-q",
                       "-F",
                       "-t",
                       "ext4",
                       "-b",
                       "4096",
                       "-I",
                       "256",
                       "-m",
                       "0",
                       "-O",
                       "^has_journal",
                       "-E",
                       "root_owner=0:0,lazy_itable_init=0,nodiscard",
                       "-L",
                       "rootfs",
                       "-d",
                       pd + "/bundle/rootfs",
                       rd + "/peer.ext4",
                       std::to_string(size_kb) + "k"},
                      rd + "/mkfs.log");
      peer_s.push_back(std::chrono::duration<double>(Steady::now() - start).count());
      skopeo_s.push_back(s.seconds);
      umoci_s.push_back(u.seconds);
      mkfs_s.push_back(m.seconds);
      peer_rss = std::max({peer_rss, s.max_rss_kb, u.max_rss_kb, m.max_rss_kb});
      std::filesystem::remove_all(pd + "/peer-layout");
      std::filesystem::remove_all(pd + "/bundle");
      std::filesystem::remove(rd + "/peer.ext4");
    };
    if (run % 2 == 0) {
      runOurs();
      runPeer();
    } else {
      runPeer();
      runOurs();
    }
    if (peer_tmpfs) std::filesystem::remove_all(pd);
    std::fprintf(stderr, "run %d: ours %.2fs, peer %.2fs\n", run + 1, ours_s.back(), peer_s.back());
  }

  const double ours = median(ours_s);
  const double peer = median(peer_s);
  std::printf("image: %zu layers, %.1f MB compressed, %.1f MB unpacked; rootfs %.1f MB\n",
              spec.layer_files.size(), static_cast<double>(compressed) / 1e6,
              static_cast<double>(unpacked) / 1e6, static_cast<double>(rootfs_bytes) / 1e6);
  std::printf("runs: %d (medians); peer intermediate files on %s\n\n", runs,
              peer_tmpfs ? "/dev/shm (tmpfs)" : "the cache disk");
  std::printf("| pipeline | seconds | peak RSS MB |\n|---|---|---|\n");
  std::printf("| plfm-node-agent image pull | %.2f | %.1f |\n", ours,
              static_cast<double>(ours_rss) / 1024);
  std::printf("| **peer:** skopeo copy + umoci unpack + mkfs.ext4 -d | %.2f | %.1f |\n", peer,
              static_cast<double>(peer_rss) / 1024);
  std::printf("| peer step: skopeo copy | %.2f | |\n", median(skopeo_s));
  std::printf("| peer step: umoci unpack | %.2f | |\n", median(umoci_s));
  std::printf("| peer step: mkfs.ext4 -d | %.2f | |\n", median(mkfs_s));
  std::printf("\nspeedup: %.2fx (target >= 2x)\n", peer / ours);
  return 0;
}
