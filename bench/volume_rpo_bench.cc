// bench/volume_rpo_bench: what `rpo_seconds` looks like in steady state
// (docs/specs/runtime/volume-mounts.md §Backups).
//
//   build/bench/volume_rpo_bench [--every 1m] [--minutes 4]   # root
//
// `vt dev up` (whose node has a local restic repository), examples/hello
// deployed with a 64 MiB volume whose `backup_every` is `--every`, and the
// workload appending a line to it every second through `vt exec`. Then, for
// `--minutes`, `vt volumes get data-0` every 2 s: rpo_seconds (now minus the
// consistent point of the newest backup, as the control plane shows it) and
// the scheduled snapshots with how long each took from its consistent point
// to `backed_up`. The RPO is a sawtooth: at most the period plus the time one
// snapshot takes to be backed up (and the schedule's 1 s tick), so the
// figure for the default 15m policy is 900 s plus that part, measured here
// with a shorter period so that a run takes minutes.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "plfm/core/process.h"
#include "vt_dev_driver.h"

namespace plfm {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class RpoBench : public e2e::VtDevDriver {
 public:
  ~RpoBench() { (void)vt({"dev", "down", "--state-dir", state_->path()}, 180s, {}, false); }

  bool deploy(const std::string& every) {
    if (vt(upArgs(), 240s).code != 0) return false;
    const std::string ref = pushHello();
    if (ref.find("@sha256:") == std::string::npos) return false;
    std::string text =
        readFile(std::string(PLFM_SOURCE_DIR) + "/examples/hello/vt.toml").value_or("");
    text +=
        "\n[[volumes]]\nname = \"data\"\nmount = \"/data\"\nsize = \"64MiB\"\n"
        "process = \"web\"\nbackup_every = \"" +
        every + "\"\n";
    const std::string manifest = io_->file("vt.toml");
    std::ofstream(manifest) << text;
    return vt({"deploy", "--manifest", manifest, "--image", ref, "--timeout", "4m"}, 300s).code ==
           0;
  }

  // The workload appends a numbered line every second, in the background:
  // in a session of its own, so that the end of the exec session (which
  // signals its process group) leaves it running.
  bool startWriter() {
    const std::string script =
        "busybox setsid sh -c 'i=0; while true; do i=$((i+1)); echo $i >> /data/log; sleep 1; "
        "done' >/dev/null 2>&1 &";
    return vt({"exec", "--app", "hello", "--", "sh", "-c", script}, 60s).code == 0;
  }

  // Lines the writer has appended so far (-1: exec failed).
  int lines() {
    e2e::VtRun r = vt({"exec", "--app", "hello", "--", "sh", "-c", "wc -l < /data/log"}, 60s);
    return r.code == 0 ? std::atoi(r.out.c_str()) : -1;
  }

  json get(const std::vector<std::string>& args) {
    e2e::VtRun r = vt(args, 60s, {}, false);
    return json::parse(r.out, nullptr, false);
  }
};

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

int64_t unixMs(const std::string& rfc3339) {
  std::tm tm{};
  double frac = 0;
  if (::strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  if (const auto dot = rfc3339.find('.'); dot != std::string::npos) {
    frac = std::atof(("0" + rfc3339.substr(dot, rfc3339.find('Z') - dot)).c_str());
  }
  return static_cast<int64_t>(::timegm(&tm)) * 1000 + static_cast<int64_t>(frac * 1000);
}

}  // namespace
}  // namespace plfm

int main(int argc, char** argv) {
  using namespace plfm;
  std::string every = "1m";
  int minutes = 4;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--every") == 0) every = argv[i + 1];
    if (std::strcmp(argv[i], "--minutes") == 0) minutes = std::atoi(argv[i + 1]);
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "volume_rpo_bench needs root (taps, a network namespace)\n");
    return 2;
  }
  if (auto r = e2e::enterPrivateNetwork(); !r) {
    std::fprintf(stderr, "%s\n", r.error().toString().c_str());
    return 1;
  }
  RpoBench b;
  if (!b.deploy(every) || !b.startWriter()) {
    std::fprintf(stderr, "volume_rpo_bench: the platform or the deploy failed\n");
    return 1;
  }
  const std::vector<std::string> scope = {"--app", "hello", "--format", "json"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), scope.begin(), scope.end());
    return args;
  };
  // Wait for the first backup, then sample.
  for (auto deadline = Clock::now() + 600s; Clock::now() < deadline;) {
    if (b.get(with({"volumes", "get", "data-0"}))["rpo_seconds"].is_number()) break;
    std::this_thread::sleep_for(2s);
  }
  std::vector<double> rpo;
  const auto end = Clock::now() + std::chrono::minutes(minutes);
  while (Clock::now() < end) {
    const json v = b.get(with({"volumes", "get", "data-0"}));
    if (v.is_object() && v["rpo_seconds"].is_number())
      rpo.push_back(v["rpo_seconds"].get<double>());
    std::this_thread::sleep_for(2s);
  }
  const int written = b.lines();
  std::vector<double> lag;  // consistent point to backed up, per scheduled snapshot
  int scheduled = 0;
  const json snaps = b.get(with({"volumes", "snapshots", "data-0"}));
  if (snaps.is_object() && snaps["items"].is_array()) {
    for (const auto& s : snaps["items"]) {
      if (s.value("origin", "") != "schedule") continue;
      ++scheduled;
      if (!s["taken_at"].is_string() || !s["backed_up_at"].is_string()) continue;
      lag.push_back(static_cast<double>(unixMs(s["backed_up_at"].get<std::string>()) -
                                        unixMs(s["taken_at"].get<std::string>())) /
                    1000.0);
    }
  }
  std::printf(
      "volume_rpo_bench: backup_every %s, %d min sampled every 2 s (%zu samples), %u cores\n",
      every.c_str(), minutes, rpo.size(), std::thread::hardware_concurrency());
  std::printf("  rpo_seconds: min %.0f, p50 %.0f, max %.0f\n", quantile(rpo, 0), quantile(rpo, 0.5),
              quantile(rpo, 1));
  std::printf("  scheduled snapshots: %d; consistent point to backed up: p50 %.1f s, max %.1f s\n",
              scheduled, quantile(lag, 0.5), quantile(lag, 1));
  std::printf("  the workload appended %d lines meanwhile\n", written);
  return rpo.empty() ? 1 : 0;
}
