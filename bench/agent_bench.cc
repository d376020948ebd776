// bench/agent_bench: what the node agent costs, with real microVMs.
//
//   build/bench/agent_bench [--boots N] [--idle K] [--cpu-seconds S]
//                           [--tb-size MIB] [--no-free-page-reporting]
//
// 1. Agent overhead, plan received -> VMM start requested, with the image
//    already cached (the first boot warms the cache and is not counted): what
//    the agent itself does per instance (record, image lookup, scratch disk,
//    tap, CONFIG), and -> VMM started (QEMU's own setup with -daemonize).
// 2. Boot to READY under the qemu driver (KVM if it works, TCG otherwise).
// 3. VMM memory per idle instance: RSS and PSS of each QEMU process running
//    a sleeping workload with 128 MiB of guest RAM, and the CPU each idle
//    VMM burns (utime + stime over S seconds, % of one core).
// The density flags override the driver's defaults (QemuOptions, ADR 0019),
// so that one binary measures each lever before and after.
// Runs in a private network namespace (root).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/agent.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "runtime/qemu_runtime.h"
#include "support/agent_world.h"

namespace {

using namespace plfm;
using nlohmann::json;
using namespace std::chrono_literals;

json spec(const agent::testing::AgentWorld& w, const std::string& id, int n,
          const std::string& mode) {
  char addr[64];
  std::snprintf(addr, sizeof addr, "fd7a:5c00:0:1::%x", n + 2);
  return agent::testing::workloadSpec(w, id, "org_0bench00000000000000000000", {mode}, addr);
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(std::lround(q * static_cast<double>(v.size() - 1)));
  return v[std::min(i, v.size() - 1)];
}

// kB of a /proc/PID/smaps_rollup field.
long rollup(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

// utime + stime of a process, in clock ticks.
long cpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string f;
  long utime = 0;
  long stime = 0;
  // After the comm: state is field 3, utime 14, stime 15.
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::atol(f.c_str());
    if (i == 15) stime = std::atol(f.c_str());
  }
  return utime + stime;
}

class Bench {
 public:
  Bench(const agent::testing::AgentWorld& w, runtime::QemuOptions q)
      : world_(w), qemu_(std::move(q)) {}

  std::unique_ptr<agent::Agent> start(const std::string& state) {
    agent::AgentOptions o;
    o.state_dir = state;
    o.plan_file = state + "/plan.json";
    o.kernel = world_.kernel;
    o.initramfs = world_.initramfs;
    o.image_cache_dir = world_.dir->file("images");
    o.scratch_mb = 64;
    o.shutdown_grace_ms = 2000;
    o.stop_instances_on_exit = true;
    plan(o.plan_file, json::array());
    runtime::QemuOptions q = qemu_;
    q.probe_dir = world_.dir->path();
    auto a = std::make_unique<agent::Agent>(o, std::make_unique<runtime::QemuRuntime>(q));
    if (auto r = a->start(); !r) {
      std::fprintf(stderr, "agent: %s\n", r.error().toString().c_str());
      std::exit(1);
    }
    plan_path_ = o.plan_file;
    return a;
  }
  void plan(const std::string& path, const json& instances) {
    json p = {{"node_id", "node_b"}, {"version", ++version_}, {"instances", instances}};
    (void)writeFileAtomic(path, p.dump());
  }
  void plan(const json& instances) { plan(plan_path_, instances); }
  const agent::testing::AgentWorld& world() const { return world_; }

 private:
  const agent::testing::AgentWorld& world_;
  runtime::QemuOptions qemu_;
  std::string plan_path_;
  int64_t version_ = 0;
};

std::optional<agent::InstanceStatus> waitFor(agent::Agent& a, const std::string& id,
                                             agent::Phase phase, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    for (const auto& s : a.instances()) {
      if (s.instance_id == id && (s.phase == phase || agent::isTerminal(s.phase))) return s;
    }
    std::this_thread::sleep_for(10ms);
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  int boots = 6;
  int idle = 3;
  int cpu_seconds = 30;
  runtime::QemuOptions qemu;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--boots") == 0 && has_value) boots = std::atoi(argv[++i]);
    if (std::strcmp(argv[i], "--idle") == 0 && has_value) idle = std::atoi(argv[++i]);
    if (std::strcmp(argv[i], "--cpu-seconds") == 0 && has_value) {
      cpu_seconds = std::atoi(argv[++i]);
    }
    if (std::strcmp(argv[i], "--tb-size") == 0 && has_value) {
      qemu.tcg_tb_size_mb = static_cast<uint32_t>(std::atoi(argv[++i]));
    }
    if (std::strcmp(argv[i], "--no-free-page-reporting") == 0) qemu.free_page_reporting = false;
  }
  log::Options lo;
  lo.level = log::Level::kWarn;
  log::init(lo);
  if (auto r = agent::testing::enterPrivateNetns(); !r) {
    std::fprintf(stderr, "agent_bench: %s\n", r.error().toString().c_str());
    return 1;
  }
  auto world =
      agent::testing::makeAgentWorld(PLFM_SOURCE_DIR, PLFM_VT_INIT_BIN, PLFM_TEST_WORKLOAD_BIN);
  if (!world) {
    std::fprintf(stderr, "agent_bench: %s\n", world.error().toString().c_str());
    return 1;
  }
  Bench bench(**world, qemu);
  plfm::testing::TempDir state("agb");
  auto a = bench.start(state.path());
  std::vector<double> spawn_ms;
  std::vector<double> start_ms;
  std::vector<double> boot_ms;
  std::vector<double> hello_ms;
  // The guest's boot stages (READY, host-channel.md §READY), guest ms.
  std::vector<double> kernel_ms, modules_ms, mounts_ms, config_ms, spawned_ms;
  std::string accel;
  for (int i = 0; i <= boots; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "inst_0bench%020d", i);
    bench.plan(json::array({spec(**world, id, i, "sleep")}));
    auto s = waitFor(*a, id, agent::Phase::kRunning, 120s);
    if (!s || s->phase != agent::Phase::kRunning) {
      std::fprintf(stderr, "boot %d failed: %s\n", i, s ? s->reason.c_str() : "timeout");
      return 1;
    }
    if (i > 0) {  // boot 0 pulls the image and builds its rootfs
      spawn_ms.push_back(static_cast<double>(s->timings.spawn_us) / 1000.0);
      start_ms.push_back(static_cast<double>(s->timings.start_ms));
      boot_ms.push_back(static_cast<double>(s->timings.boot_ms));
      hello_ms.push_back(static_cast<double>(s->timings.hello_ms));
      const agent::Timings& t = s->timings;
      if (t.guest_init_ms >= 0) {
        kernel_ms.push_back(static_cast<double>(t.guest_init_ms));
        modules_ms.push_back(static_cast<double>(t.guest_modules_ms - t.guest_init_ms));
        mounts_ms.push_back(static_cast<double>(t.guest_mounts_ms - t.guest_modules_ms));
        config_ms.push_back(static_cast<double>(t.guest_config_ms - t.guest_mounts_ms));
        spawned_ms.push_back(static_cast<double>(t.guest_ready_ms - t.guest_config_ms));
      }
    }
    bench.plan(json::array());
    waitFor(*a, id, agent::Phase::kStopped, 60s);
    std::this_thread::sleep_for(200ms);
  }
  a->stop();
  a.reset();
  std::string accel_file = readFile((*world)->dir->file("accel-probe.json")).value_or("{}");
  accel = json::parse(accel_file, nullptr, false).value("accel", "?");

  std::printf("agent_bench: %d boots (image cached), qemu accel=%s, %u cores\n", boots,
              accel.c_str(), std::thread::hardware_concurrency());
  std::printf("  guest kernel: %s\n", (*world)->kernel.c_str());
  std::printf("  density settings: tb-size %u MiB (0: QEMU's default), free-page reporting %s\n",
              qemu.tcg_tb_size_mb, qemu.free_page_reporting ? "on" : "off");
  std::printf(
      "  plan -> VMM start requested (agent overhead): p50 %.1f ms, p95 %.1f ms, max %.1f ms\n",
      quantile(spawn_ms, 0.5), quantile(spawn_ms, 0.95), quantile(spawn_ms, 1));
  std::printf(
      "  plan -> VMM started (incl. qemu setup):        p50 %.0f ms, p95 %.0f ms, max %.0f ms\n",
      quantile(start_ms, 0.5), quantile(start_ms, 0.95), quantile(start_ms, 1));
  std::printf("  VMM started -> guest HELLO:                    p50 %.0f ms, p95 %.0f ms\n",
              quantile(hello_ms, 0.5), quantile(hello_ms, 0.95));
  std::printf(
      "  VMM started -> READY (boot):                   p50 %.0f ms, p95 %.0f ms, p99 %.0f ms\n",
      quantile(boot_ms, 0.5), quantile(boot_ms, 0.95), quantile(boot_ms, 0.99));
  if (!kernel_ms.empty()) {
    std::printf("  guest boot stages, p50 (guest clock; each stage from the end of the last):\n");
    std::printf("    kernel (to vt-init):             %.0f ms\n", quantile(kernel_ms, 0.5));
    std::printf("    modules loaded:                  %.0f ms\n", quantile(modules_ms, 0.5));
    std::printf("    early mounts:                    %.0f ms\n", quantile(mounts_ms, 0.5));
    std::printf("    channel, HELLO -> CONFIG:        %.0f ms\n", quantile(config_ms, 0.5));
    std::printf("    rootfs, network -> spawned:      %.0f ms\n", quantile(spawned_ms, 0.5));
  }

  // Idle memory: K sleeping instances side by side.
  plfm::testing::TempDir state2("agm");
  a = bench.start(state2.path());
  json instances = json::array();
  std::vector<std::string> ids;
  for (int i = 0; i < idle; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "inst_01d1e%021d", i);
    ids.emplace_back(id);
    instances.push_back(spec(**world, id, 100 + i, "sleep"));
  }
  bench.plan(instances);
  std::vector<double> rss, pss;
  for (const auto& id : ids) {
    auto s = waitFor(*a, id, agent::Phase::kRunning, 180s);
    if (!s || s->phase != agent::Phase::kRunning) {
      std::fprintf(stderr, "idle boot failed: %s\n", s ? s->reason.c_str() : "timeout");
      return 1;
    }
  }
  // Let the guests settle: free-page reporting runs 2 s after pages are freed.
  std::this_thread::sleep_for(5s);
  std::vector<std::pair<pid_t, long>> ticks;
  for (const auto& s : a->instances()) ticks.emplace_back(s.vmm_pid, cpuTicks(s.vmm_pid));
  std::this_thread::sleep_for(std::chrono::seconds(cpu_seconds));
  std::vector<double> cpu;
  cpu.reserve(ticks.size());
  const auto hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  for (const auto& [pid, before] : ticks) {
    cpu.push_back(static_cast<double>(cpuTicks(pid) - before) / hz * 100.0 /
                  static_cast<double>(std::max(cpu_seconds, 1)));
  }
  for (const auto& s : a->instances()) {
    rss.push_back(static_cast<double>(rollup(s.vmm_pid, "Rss")) / 1024.0);
    pss.push_back(static_cast<double>(rollup(s.vmm_pid, "Pss")) / 1024.0);
  }
  std::printf(
      "  idle instance (128 MiB guest RAM, %d running): VMM RSS p50 %.1f MiB, PSS p50 %.1f MiB\n",
      idle, quantile(rss, 0.5), quantile(pss, 0.5));
  std::printf("  idle VMM CPU over %d s: p50 %.2f%%, max %.2f%% of one core\n", cpu_seconds,
              quantile(cpu, 0.5), quantile(cpu, 1));
  a->stop();
  return 0;
}
