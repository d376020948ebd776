// bench/volume_bench: what a volume snapshot costs (volume-mounts.md
// §Snapshots).
//
//   build/bench/volume_bench [--snapshots N] [--gib G] [--size-gib S]
//                            [--backup-only | --copy-only]
//
// 1. The freeze window (FREEZE sent to THAWED received) over N snapshots of
//    a 64 MiB volume that a workload appends to as fast as it can, through
//    the real agent, QEMU and vt-init, on this host's volumes directory
//    (ext4 here: QEMU blockdev-backup, THAW right after the job starts).
// 2. The copy of an S GiB volume file (default S = G) holding G GiB of data
//    (--copy-only: this part alone): a reflink
//    (FICLONE) on an XFS loop mount with reflink=1, against the sparse copy
//    the agent falls back to under Firecracker (no backup job), which
//    happens inside the freeze window.
// 3. Backups with restic (§Backups) of a G GiB volume file of random data
//    into a local repository on this host: the first backup, then an
//    incremental one after 1% of the file changed (16 scattered runs), by
//    BackupRepository, against `restic backup FILE` run by hand after another
//    1% changed (the peer: restic alone, no wrapper). Then restores of the
//    G GiB: from a local snapshot (what cloneOrCopy does here: a copy on
//    ext4; the reflink is part 2's figure), from restic by BackupRepository
//    (`restic dump` into a fresh file) and its sha256 check, against
//    `restic restore --target DIR` by hand.
// Runs in a private network namespace (root; the XFS part needs a loop device).
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent.h"
#include "agent/volume_backup.h"
#include "agent/volume_snapshot.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "runtime/qemu_runtime.h"
#include "support/agent_world.h"

namespace {

using namespace plfm;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr uint64_t kMiB = uint64_t{1} << 20;
const std::string kVol = "vol_0bench00000000000000000001";

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(std::lround(q * static_cast<double>(v.size() - 1)));
  return v[std::min(i, v.size() - 1)];
}

// Part 1: N snapshots of a volume being written; the freeze windows in ms.
std::vector<double> freezeWindows(const agent::testing::AgentWorld& world, int snapshots,
                                  std::string& method) {
  plfm::testing::TempDir state("vlb");
  agent::AgentOptions o;
  o.state_dir = state.path();
  o.plan_file = state.file("plan.json");
  o.kernel = world.kernel;
  o.initramfs = world.initramfs;
  o.image_cache_dir = world.dir->file("images");
  o.scratch_mb = 64;
  o.shutdown_grace_ms = 2000;
  o.stop_instances_on_exit = true;
  const std::string id = "inst_0bench00000000000000000001";
  json spec = agent::testing::workloadSpec(world, id, "org_0bench00000000000000000000", {},
                                           "fd7a:5c00:0:1::2");
  spec["command"] = {"/bin/sh", "-c",
                     "i=0; while :; do i=$((i+1)); echo \"line $i\" >> /data/lines; done"};
  spec["volumes"] = {
      {{"volume_id", kVol}, {"name", "data-0"}, {"mount", "/data"}, {"size_bytes", 64 * kMiB}}};
  json plan = {{"node_id", "node_b"},
               {"version", 1},
               {"instances", json::array({spec})},
               {"volumes", {{{"volume_id", kVol}, {"size_bytes", 64 * kMiB}, {"state", "ready"}}}}};
  (void)writeFileAtomic(o.plan_file, plan.dump());
  runtime::QemuOptions q;
  q.probe_dir = world.dir->path();
  agent::Agent a(o, std::make_unique<runtime::QemuRuntime>(q));
  if (auto r = a.start(); !r) {
    std::fprintf(stderr, "agent: %s\n", r.error().toString().c_str());
    std::exit(1);
  }
  auto deadline = std::chrono::steady_clock::now() + 120s;
  bool running = false;
  while (!running && std::chrono::steady_clock::now() < deadline) {
    for (const auto& s : a.instances()) running = running || s.phase == agent::Phase::kRunning;
    std::this_thread::sleep_for(50ms);
  }
  if (!running) {
    std::fprintf(stderr, "volume_bench: the instance did not start\n");
    std::exit(1);
  }
  std::this_thread::sleep_for(1s);
  std::vector<double> windows;
  for (int i = 0; i < snapshots; ++i) {
    auto snap = a.snapshotVolume(kVol, "snap_" + std::to_string(i));
    if (!snap) {
      std::fprintf(stderr, "snapshot %d: %s\n", i, snap.error().toString().c_str());
      std::exit(1);
    }
    method = snap->method;
    windows.push_back(static_cast<double>(snap->freeze_ms));
    ::unlink(snap->path.c_str());
    std::this_thread::sleep_for(100ms);
  }
  a.stop();
  return windows;
}

// A file of `bytes` written with data (no holes).
bool writeFull(const std::string& path, uint64_t bytes) {
  std::ofstream out(path, std::ios::binary);
  std::string block(kMiB, 'v');
  for (uint64_t done = 0; done < bytes && out; done += kMiB) out.write(block.data(), kMiB);
  out.flush();
  ::sync();
  return static_cast<bool>(out);
}

// Seconds to snapshot a volume file of `size` bytes holding `bytes` of data
// (the rest a hole) in `dir`; -1 when it failed.
double copySeconds(const std::string& dir, uint64_t bytes, uint64_t size, std::string& method) {
  const std::string from = dir + "/vol.ext4";
  const std::string to = dir + "/snap.ext4";
  if (!writeFull(from, bytes) || ::truncate(from.c_str(), static_cast<off_t>(size)) != 0) {
    return -1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto m = agent::cloneOrCopy(from, to);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::unlink(from.c_str());
  ::unlink(to.c_str());
  if (!m) return -1;
  method = *m;
  return s;
}

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// `bytes` of pseudo-random data: nothing for restic to compress or dedup.
bool writeRandom(const std::string& path, uint64_t bytes) {
  std::mt19937_64 rng(42);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::vector<uint64_t> block(kMiB / 8);
  for (uint64_t done = 0; done < bytes && out; done += kMiB) {
    for (auto& w : block) w = rng();
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(kMiB));
  }
  return static_cast<bool>(out);
}

// Rewrites 1% of the file in 16 runs spread over it.
void changeOnePercent(const std::string& path, uint64_t bytes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  const uint64_t run = bytes / 100 / 16;
  std::string data(run, '\0');
  for (int i = 0; i < 16; ++i) {
    for (auto& c : data) c = static_cast<char>(rng());
    f.seekp(static_cast<std::streamoff>((bytes / 16) * static_cast<uint64_t>(i) + rng() % run));
    f.write(data.data(), static_cast<std::streamsize>(run));
  }
}

[[noreturn]] void die(const char* what, const Error& e) {
  std::fprintf(stderr, "volume_bench: %s: %s\n", what, e.toString().c_str());
  std::exit(1);
}

// `restic` by hand, as an operator would run it; its JSON summary line.
json resticByHand(const agent::BackupOptions& o, const std::vector<std::string>& args,
                  const std::string& out_file) {
  std::vector<std::string> argv = {"restic"};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions so;
  so.stdout_path = out_file;
  so.stderr_path = out_file + ".err";
  so.env = {"RESTIC_REPOSITORY=" + o.repository, "RESTIC_PASSWORD_FILE=" + o.password_file,
            "RESTIC_CACHE_DIR=" + o.cache_dir};
  if (auto r = runChecked(argv, so); !r) die("restic by hand", r.error());
  json summary = json::object();
  std::ifstream in(out_file);
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.value("message_type", "") == "summary") summary = j;
  }
  return summary;
}

// Part 3: backups and restores of a `bytes` volume file.
void backups(uint64_t bytes) {
  plfm::testing::TempDir dir("vlr");
  agent::BackupOptions o;
  o.repository = dir.file("repo");
  o.password_file = dir.file("password");
  o.cache_dir = dir.file("cache");
  if (auto r = writeFileAtomic(o.password_file, "volume-bench-password", 0600); !r) {
    die("password", r.error());
  }
  agent::BackupRepository repo(o);
  if (auto r = repo.ensureInitialized(); !r) die("restic init", r.error());
  const std::string vol = dir.file("vol.ext4");
  if (!writeRandom(vol, bytes)) {
    std::fprintf(stderr, "volume_bench: cannot write %s\n", vol.c_str());
    std::exit(1);
  }
  const double gib = static_cast<double>(bytes) / static_cast<double>(uint64_t{1} << 30);
  auto first = repo.backup(vol, kVol, "snap_b0");
  if (!first) die("first backup", first.error());
  std::printf(
      "  backup, %.0f GiB volume of random data, first (BackupRepository): %.1f s, %.1f MiB "
      "added\n",
      gib, static_cast<double>(first->duration_ms) / 1000,
      static_cast<double>(first->bytes_added) / kMiB);
  changeOnePercent(vol, bytes, 1);
  auto incr = repo.backup(vol, kVol, "snap_b1");
  if (!incr) die("incremental backup", incr.error());
  std::printf(
      "  backup after 1%% changed (BackupRepository, restic backup --stdin): %.1f s, "
      "%.1f MiB added\n",
      static_cast<double>(incr->duration_ms) / 1000, static_cast<double>(incr->bytes_added) / kMiB);
  changeOnePercent(vol, bytes, 2);
  auto t0 = std::chrono::steady_clock::now();
  const json peer = resticByHand(o, {"backup", "--json", "--quiet", vol}, dir.file("peer.json"));
  std::printf(
      "  peer: restic backup FILE by hand after another 1%% changed: %.1f s, %.1f MiB "
      "added\n",
      secondsSince(t0), peer.value("data_added", 0.0) / kMiB);

  const std::string local = dir.file("local-restore.ext4");
  t0 = std::chrono::steady_clock::now();
  auto how = agent::cloneOrCopy(vol, local);
  if (!how) die("local restore", how.error());
  std::printf("  restore from a local snapshot (%s, this host's filesystem): %.2f s\n",
              how->c_str(), secondsSince(t0));
  ::unlink(local.c_str());

  const std::string restored = dir.file("restored.ext4");
  t0 = std::chrono::steady_clock::now();
  if (auto r = repo.restore(incr->backup_id, "snap_b1", restored); !r) die("restore", r.error());
  const double restore_s = secondsSince(t0);
  t0 = std::chrono::steady_clock::now();
  auto sha = agent::sha256OfFile(restored);
  if (!sha) die("sha256", sha.error());
  std::printf(
      "  restore from restic (BackupRepository, restic dump into a new file): %.1f s, "
      "then its sha256: %.1f s\n",
      restore_s, secondsSince(t0));
  ::unlink(restored.c_str());
  t0 = std::chrono::steady_clock::now();
  (void)resticByHand(o, {"restore", incr->backup_id, "--target", dir.file("peer-restore")},
                     dir.file("peer-restore.out"));
  std::printf("  peer: restic restore --target DIR by hand: %.1f s\n", secondsSince(t0));
}

// Part 2: the snapshot copy of a `size` volume file holding `bytes` of
// data, on this host's filesystem and on an XFS loop mount with reflinks.
int copies(int gib, int size_gib, uint64_t bytes, uint64_t size) {
  plfm::testing::TempDir ext4("vlc");
  std::string copy_method;
  const double copy_s = copySeconds(ext4.path(), bytes, size, copy_method);
  std::printf("  %d GiB volume, %d GiB of data, this host's filesystem (%s): %.2f s\n", size_gib,
              gib, copy_method.c_str(), copy_s);

  plfm::testing::TempDir xfs("vlx");
  const std::string image = xfs.file("xfs.img");
  const std::string mnt = xfs.file("mnt");
  ::mkdir(mnt.c_str(), 0700);
  std::ofstream(image).close();
  if (::truncate(image.c_str(), static_cast<off_t>(bytes + 512 * kMiB)) != 0 ||
      !runChecked({"mkfs.xfs", "-q", "-m", "reflink=1", image}, {}) ||
      !runChecked({"mount", "-o", "loop", image, mnt}, {})) {
    std::printf(
        "  XFS loop mount unavailable (root, a loop device, xfsprogs): reflink not measured\n");
    return 0;
  }
  std::string clone_method;
  const double clone_s = copySeconds(mnt, bytes, size, clone_method);
  std::printf("  %d GiB volume, %d GiB of data, XFS loop mount with reflink=1 (%s): %.3f ms\n",
              size_gib, gib, clone_method.c_str(), clone_s * 1000);
  ::umount2(mnt.c_str(), MNT_DETACH);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int snapshots = 50;
  int gib = 1;
  int size_gib = 0;
  bool backup_only = false;
  bool copy_only = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--backup-only") == 0) backup_only = true;
    if (std::strcmp(argv[i], "--copy-only") == 0) copy_only = true;
    if (i + 1 >= argc) continue;
    if (std::strcmp(argv[i], "--snapshots") == 0) snapshots = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--gib") == 0) gib = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--size-gib") == 0) size_gib = std::atoi(argv[i + 1]);
  }
  size_gib = std::max(size_gib, gib);
  log::Options lo;
  lo.level = log::Level::kWarn;
  log::init(lo);
  const uint64_t bytes = static_cast<uint64_t>(gib) << 30;
  const uint64_t size = static_cast<uint64_t>(size_gib) << 30;
  if (copy_only) return copies(gib, size_gib, bytes, size);
  if (backup_only) {
    std::printf("volume_bench: backups only, %u cores\n", std::thread::hardware_concurrency());
    backups(bytes);
    return 0;
  }
  if (auto r = agent::testing::enterPrivateNetns(); !r) {
    std::fprintf(stderr, "volume_bench: %s\n", r.error().toString().c_str());
    return 1;
  }
  auto world =
      agent::testing::makeAgentWorld(PLFM_SOURCE_DIR, PLFM_VT_INIT_BIN, PLFM_TEST_WORKLOAD_BIN);
  if (!world) {
    std::fprintf(stderr, "volume_bench: %s\n", world.error().toString().c_str());
    return 1;
  }
  std::string method;
  const auto windows = freezeWindows(**world, snapshots, method);
  const std::string accel =
      json::parse(readFile((*world)->dir->file("accel-probe.json")).value_or("{}"), nullptr, false)
          .value("accel", "?");
  std::printf("volume_bench: qemu accel=%s, %u cores\n", accel.c_str(),
              std::thread::hardware_concurrency());
  std::printf(
      "  freeze window, %d snapshots of a 64 MiB volume being appended to (%s): p50 %.0f ms, "
      "p99 %.0f ms, max %.0f ms\n",
      snapshots, method.c_str(), quantile(windows, 0.5), quantile(windows, 0.99),
      quantile(windows, 1));

  backups(bytes);
  return copies(gib, size_gib, bytes, size);
}
