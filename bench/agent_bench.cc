// bench/agent_bench: what the node agent costs, with real microVMs.
//
//   build/bench/agent_bench [--boots N] [--idle K] [--cpu-seconds S]
//                           [--tb-size MIB] [--no-free-page-reporting] [--host-huge-pages on|off]
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
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/agent.h"
#include "agent_bench_support.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "runtime/qemu_runtime.h"
#include "support/agent_world.h"

namespace {

using namespace plfm;
using bench::BenchAgent;
using bench::benchSpec;
using bench::cpuPercent;
using bench::cpuTicks;
using bench::quantile;
using bench::smapsRollupKb;
using bench::waitForPhase;
using bench::waitUntilFinished;
using nlohmann::json;
using namespace std::chrono_literals;

std::unique_ptr<agent::Agent> startAgent(BenchAgent& bench, const std::string& state) {
  auto a = bench.start(state);
  if (!a) {
    std::fprintf(stderr, "agent: %s\n", a.error().toString().c_str());
    std::exit(1);
  }
  return std::move(*a);
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
    if (std::strcmp(argv[i], "--host-huge-pages") == 0 && has_value) {
      qemu.host_huge_pages = std::strcmp(argv[++i], "on") == 0;
    }
  }
  log::Options lo;
  lo.level = log::Level::kWarn;
  log::init(lo);
  auto world = plfm::bench::makeBenchWorld();
  if (!world) {
    std::fprintf(stderr, "agent_bench: %s\n", world.error().toString().c_str());
    return 1;
  }
  BenchAgent bench(**world, qemu);
  plfm::testing::TempDir state("agb");
  auto a = startAgent(bench, state.path());
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
    bench.plan(json::array({benchSpec(**world, id, i, "sleep")}));
    auto s = waitForPhase(*a, id, agent::Phase::kRunning, 120s);
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
    // A stopped instance leaves the list once its VMM is gone.
    if (!waitUntilFinished(*a, id, 60s)) {
      std::fprintf(stderr, "boot %d: the instance did not stop within 60 s\n", i);
      return 1;
    }
    std::this_thread::sleep_for(200ms);
  }
  a->stop();
  a.reset();
  std::string accel_file = readFile((*world)->dir->file("accel-probe.json")).value_or("{}");
  accel = json::parse(accel_file, nullptr, false).value("accel", "?");

  std::printf("agent_bench: %d boots (image cached), qemu accel=%s, %u cores\n", boots,
              accel.c_str(), std::thread::hardware_concurrency());
  std::printf("  guest kernel: %s\n", (*world)->kernel.c_str());
  std::printf(
      "  density settings: tb-size %u MiB (0: QEMU's default), free-page reporting %s, host huge "
      "pages %s\n",
      qemu.tcg_tb_size_mb, qemu.free_page_reporting ? "on" : "off",
      qemu.host_huge_pages ? "allowed" : "off");
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
  a = startAgent(bench, state2.path());
  json instances = json::array();
  std::vector<std::string> ids;
  for (int i = 0; i < idle; ++i) {
    char id[40];
    std::snprintf(id, sizeof id, "inst_01d1e%021d", i);
    ids.emplace_back(id);
    instances.push_back(benchSpec(**world, id, 100 + i, "sleep"));
  }
  bench.plan(instances);
  std::vector<double> rss, pss, ram, tcg, kernel, files, anon;
  for (const auto& id : ids) {
    auto s = waitForPhase(*a, id, agent::Phase::kRunning, 180s);
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
  for (const auto& [pid, before] : ticks) {
    cpu.push_back(cpuPercent(before, cpuTicks(pid), static_cast<double>(std::max(cpu_seconds, 1))));
  }
  for (const auto& s : a->instances()) {
    rss.push_back(static_cast<double>(smapsRollupKb(s.vmm_pid, "Rss")) / 1024.0);
    pss.push_back(static_cast<double>(smapsRollupKb(s.vmm_pid, "Pss")) / 1024.0);
    const auto by = bench::pssByMapping(s.vmm_pid, (*world)->kernel, 128L * 1024);
    ram.push_back(static_cast<double>(by.guest_ram) / 1024.0);
    tcg.push_back(static_cast<double>(by.tcg_cache) / 1024.0);
    kernel.push_back(static_cast<double>(by.kernel) / 1024.0);
    files.push_back(static_cast<double>(by.qemu_files) / 1024.0);
    anon.push_back(static_cast<double>(by.other_anon) / 1024.0);
  }
  std::printf(
      "  idle instance (128 MiB guest RAM, %d running): VMM RSS p50 %.1f MiB, PSS p50 %.1f MiB\n",
      idle, quantile(rss, 0.5), quantile(pss, 0.5));
  std::printf(
      "  PSS p50 by mapping: guest RAM %.1f MiB, TCG cache %.1f MiB, kernel file %.1f MiB, "
      "QEMU's files %.1f MiB, heap and other anonymous %.1f MiB\n",
      quantile(ram, 0.5), quantile(tcg, 0.5), quantile(kernel, 0.5), quantile(files, 0.5),
      quantile(anon, 0.5));
  std::printf("  idle VMM CPU over %d s: p50 %.2f%%, max %.2f%% of one core\n", cpu_seconds,
              quantile(cpu, 0.5), quantile(cpu, 1));
  a->stop();
  return 0;
}
