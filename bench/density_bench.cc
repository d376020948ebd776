// bench/density_bench: how many idle microVMs one host holds, and what each
// one costs while idle (issue 20, "Density").
//
//   build/bench/density_bench [--max N] [--step K] [--cpu-seconds S]
//                             [--memory-budget-mib M] [--cpu-budget-percent P]
//                             [--settle-seconds S] [--format text|json]
//
// Boots idle instances one after another through a real node agent, the
// same microVMs bench/agent_bench boots (vt-init initramfs, the static test
// workload pulled from a registry on loopback, 128 MiB guests, the QEMU
// driver's defaults of ADR 0019), until one budget is reached:
//   --max N                   instances (default 150, the goal);
//   --memory-budget-mib M     MiB of host MemAvailable the instances may take
//                             (default: all but 2 GiB); checked before each
//                             boot against the drop per instance so far;
//   --cpu-budget-percent P    idle CPU of all VMMs together, % of one core
//                             (default 100); checked at each measuring step.
// Every K instances (and when it stops) it lets the guests settle, then
// measures each QEMU's PSS (/proc/PID/smaps_rollup), its utime + stime over S
// seconds (% of one core), and MemAvailable. Progress goes to stderr, the
// table (or JSON) to stdout. Every VM, tap and the private network namespace
// are gone when it exits, also after SIGINT, SIGTERM, SIGHUP or a failure.
// Runs in a private network namespace (root).
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "agent/agent.h"
#include "agent_bench_support.h"
#include "netdev/tap.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "runtime/qemu_runtime.h"

namespace {

using namespace plfm;
using bench::quantile;
using nlohmann::json;
using namespace std::chrono_literals;

struct Flags {
  int max = 150;
  int step = 10;
  int cpu_seconds = 10;
  int settle_seconds = 5;          // free-page reporting runs 2 s after pages are freed
  int64_t memory_budget_mib = -1;  // -1: MemAvailable at the start less kKeepAvailableMib
  double cpu_budget_percent = 100;
  bool json = false;
};

constexpr int64_t kKeepAvailableMib = 2048;
// Before the first instance says what one costs.
constexpr int64_t kFirstInstanceEstimateMib = 256;

// --- signals: blocked in every thread, polled, so that cleanup always runs.

sigset_t stopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

std::atomic<int> g_signal{0};

// True once SIGINT, SIGTERM or SIGHUP has arrived (they stay pending while
// blocked; this takes one).
bool interrupted() {
  if (g_signal.load() != 0) return true;
  sigset_t set = stopSignals();
  timespec zero{};
  int sig = sigtimedwait(&set, nullptr, &zero);
  if (sig > 0) g_signal.store(sig);
  return sig > 0;
}

// Sleeps `d` unless a stop signal arrives first; false then.
bool sleepUnlessInterrupted(std::chrono::steady_clock::duration d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (interrupted()) return false;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        100ms, until - std::chrono::steady_clock::now()));
  }
  return !interrupted();
}

// --- host readings

// MemAvailable in MiB (/proc/meminfo); -1 when unreadable.
int64_t memAvailableMib() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) return std::atoll(line.c_str() + 13) / 1024;
  }
  return -1;
}

// The tick settings of the guest kernel, from the `config` beside its vmlinux.
std::string kernelTickConfig(const std::string& vmlinux) {
  std::ifstream in(std::filesystem::path(vmlinux).parent_path() / "config");
  std::string out;
  std::string line;
  while (std::getline(in, line)) {
    const bool tick = line.rfind("CONFIG_HZ=", 0) == 0 ||
                      (line.rfind("CONFIG_NO_HZ", 0) == 0 && line.ends_with("=y")) ||
                      line == "CONFIG_HZ_PERIODIC=y";
    if (tick) out += (out.empty() ? "" : " ") + line.substr(7);
  }
  return out.empty() ? "unknown (no config beside the vmlinux)" : out;
}

// The -append argument of a running QEMU: the kernel command line the driver built.
std::string qemuKernelArgs(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string arg;
  bool next = false;
  while (std::getline(in, arg, '\0')) {
    if (next) return arg;
    next = arg == "-append";
  }
  return "?";
}

// True while `pid` runs: a zombie (its VMM exited, its parent has not
// reaped it yet) counts as gone.
bool processAlive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return false;
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

// --- the run

struct Instance {
  std::string id;
  pid_t vmm_pid = -1;
};

struct Step {
  int n = 0;
  double pss_p50 = 0, pss_max = 0, pss_total = 0;  // MiB
  double cpu_p50 = 0, cpu_max = 0, cpu_sum = 0;    // % of one core
  double agent_cpu = 0;                            // this process (the agent), % of one core
  int64_t mem_available = 0;                       // MiB
  int lost = 0;                                    // VMMs gone since their boot
};

json toJson(const Step& s) {
  return {{"n", s.n},
          {"pss_p50_mib", s.pss_p50},
          {"pss_max_mib", s.pss_max},
          {"pss_total_mib", s.pss_total},
          {"cpu_p50_percent", s.cpu_p50},
          {"cpu_max_percent", s.cpu_max},
          {"cpu_sum_percent", s.cpu_sum},
          {"agent_cpu_percent", s.agent_cpu},
          {"mem_available_mib", s.mem_available},
          {"lost_vmms", s.lost}};
}

// Settles, then measures every VMM in `instances`; nullopt when interrupted.
std::optional<Step> measure(const std::vector<Instance>& instances, const Flags& f) {
  if (!sleepUnlessInterrupted(std::chrono::seconds(f.settle_seconds))) return std::nullopt;
  Step s;
  s.n = static_cast<int>(instances.size());
  std::vector<long> before;
  before.reserve(instances.size());
  for (const auto& i : instances) before.push_back(bench::cpuTicks(i.vmm_pid));
  const long agent_before = bench::cpuTicks(::getpid());
  auto t0 = std::chrono::steady_clock::now();
  if (!sleepUnlessInterrupted(std::chrono::seconds(f.cpu_seconds))) return std::nullopt;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<double> cpu;
  std::vector<double> pss;
  for (size_t k = 0; k < instances.size(); ++k) {
    const long after = bench::cpuTicks(instances[k].vmm_pid);
    const long pss_kb = bench::smapsRollupKb(instances[k].vmm_pid, "Pss");
    if (before[k] < 0 || after < 0 || pss_kb < 0) {
      ++s.lost;
      continue;
    }
    cpu.push_back(bench::cpuPercent(before[k], after, seconds));
    pss.push_back(static_cast<double>(pss_kb) / 1024.0);
  }
  s.agent_cpu = bench::cpuPercent(agent_before, bench::cpuTicks(::getpid()), seconds);
  s.pss_p50 = quantile(pss, 0.5);
  s.pss_max = quantile(pss, 1);
  s.cpu_p50 = quantile(cpu, 0.5);
  s.cpu_max = quantile(cpu, 1);
  for (double p : pss) s.pss_total += p;
  for (double c : cpu) s.cpu_sum += c;
  s.mem_available = memAvailableMib();
  return s;
}

void printHeader() {
  std::printf("%5s  %9s  %9s  %10s  %9s  %9s  %9s  %9s  %12s\n", "N", "PSS p50", "PSS max",
              "PSS total", "CPU p50", "CPU max", "CPU sum", "agent", "MemAvailable");
  std::printf("%5s  %9s  %9s  %10s  %9s  %9s  %9s  %9s  %12s\n", "", "MiB", "MiB", "MiB", "% core",
              "% core", "% core", "% core", "MiB");
  std::fflush(stdout);
}

void printRow(const Step& s) {
  std::printf("%5d  %9.1f  %9.1f  %10.1f  %9.2f  %9.2f  %9.2f  %9.2f  %12lld%s\n", s.n, s.pss_p50,
              s.pss_max, s.pss_total, s.cpu_p50, s.cpu_max, s.cpu_sum, s.agent_cpu,
              static_cast<long long>(s.mem_available),
              s.lost > 0 ? ("  (" + std::to_string(s.lost) + " VMMs gone)").c_str() : "");
  std::fflush(stdout);
}

// Stops the agent (and with it every VM and tap), then checks: a VMM still
// alive is killed, a tap still there removed. Runs on every way out.
class Cleanup {
 public:
  Cleanup(std::unique_ptr<agent::Agent>& agent, const std::vector<Instance>& instances)
      : agent_(agent), instances_(instances) {}
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;
  ~Cleanup() { run(); }

  void run() {
    if (done_ || !agent_) return;
    done_ = true;
    std::fprintf(stderr, "density_bench: stopping %zu instances...\n", instances_.size());
    auto t0 = std::chrono::steady_clock::now();
    agent_->stop();
    agent_.reset();
    int killed = 0;
    for (const auto& i : instances_) {
      if (i.vmm_pid > 0 && processAlive(i.vmm_pid)) {
        (void)::kill(i.vmm_pid, SIGKILL);
        ++killed;
      }
    }
    int taps = 0;
    if (auto left = netdev::listLinks(netdev::kTapPrefix)) {
      for (const auto& t : *left) {
        (void)netdev::removeTap(t);
        ++taps;
      }
    }
    std::fprintf(stderr,
                 "density_bench: cleanup in %.1f s: %d VMMs outlived the agent's stop (killed), "
                 "%d taps were left (removed); the network namespace goes with this process\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                 killed, taps);
  }

 private:
  std::unique_ptr<agent::Agent>& agent_;
  const std::vector<Instance>& instances_;
  bool done_ = false;
};

bool parseFlags(int argc, char** argv, Flags& f) {
  const std::pair<std::string_view, int*> ints[] = {{"--max", &f.max},
                                                    {"--step", &f.step},
                                                    {"--cpu-seconds", &f.cpu_seconds},
                                                    {"--settle-seconds", &f.settle_seconds}};
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) return false;  // every flag takes a value
    const char* v = argv[++i];
    auto it = std::find_if(std::begin(ints), std::end(ints), [&](auto& e) { return e.first == a; });
    if (it != std::end(ints)) {
      *it->second = std::atoi(v);
    } else if (a == "--memory-budget-mib") {
      f.memory_budget_mib = std::atoll(v);
    } else if (a == "--cpu-budget-percent") {
      f.cpu_budget_percent = std::atof(v);
    } else if (a == "--format" &&
               (std::string_view(v) == "text" || std::string_view(v) == "json")) {
      f.json = std::string_view(v) == "json";
    } else {
      return false;
    }
  }
  return f.max >= 1 && f.max <= bench::kMaxBenchInstance && f.step >= 1 && f.cpu_seconds >= 1 &&
         f.settle_seconds >= 0 && f.cpu_budget_percent > 0;
}

constexpr const char* kUsage =
    "usage: density_bench [--max N] [--step K] [--cpu-seconds S] [--settle-seconds S]\n"
    "                     [--memory-budget-mib M] [--cpu-budget-percent P] [--format text|json]\n";

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (!parseFlags(argc, argv, f)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  log::Options lo;
  lo.level = log::Level::kWarn;
  log::init(lo);
  // Blocked before any thread starts, so that no thread dies of them and the
  // loop below sees them (spawned processes get an empty mask again).
  sigset_t signals = stopSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const int64_t available_before = memAvailableMib();
  const int64_t memory_budget = f.memory_budget_mib >= 0
                                    ? f.memory_budget_mib
                                    : std::max<int64_t>(available_before - kKeepAvailableMib, 0);
  auto world = bench::makeBenchWorld();
  if (!world) {
    std::fprintf(stderr, "density_bench: %s\n", world.error().toString().c_str());
    return 1;
  }
  runtime::QemuOptions qemu;  // the driver's defaults (ADR 0019)
  bench::BenchAgent rig(**world, qemu);
  plfm::testing::TempDir state("dnb");
  std::unique_ptr<agent::Agent> agent;
  std::vector<Instance> instances;
  Cleanup cleanup(agent, instances);
  if (auto a = rig.start(state.path())) {
    agent = std::move(*a);
  } else {
    std::fprintf(stderr, "density_bench: agent: %s\n", a.error().toString().c_str());
    return 1;
  }

  std::fprintf(stderr,
               "density_bench: up to %d idle instances, measuring every %d; budgets: %lld MiB of "
               "MemAvailable (%lld MiB now), %.0f%% of a core of idle VMM CPU\n",
               f.max, f.step, static_cast<long long>(memory_budget),
               static_cast<long long>(available_before), f.cpu_budget_percent);
  json plan = json::array();
  std::set<std::string> taps;
  std::set<std::string> addresses;
  std::vector<Step> steps;
  std::string stopped_by = "max (--max " + std::to_string(f.max) + ")";
  int exit_code = 0;  // 1 after a failure, 128 + N after signal N
  std::vector<double> boot_ms;
  const auto t_start = std::chrono::steady_clock::now();
  bool header = false;
  auto record = [&](const Step& s) {
    steps.push_back(s);
    if (f.json) return;
    if (!header) printHeader();
    header = true;
    printRow(s);
  };
  for (int n = 0; n < f.max; ++n) {
    if (interrupted()) break;
    const int64_t used = available_before - memAvailableMib();
    const int64_t next = n == 0 ? kFirstInstanceEstimateMib : std::max<int64_t>(used / n, 1);
    if (used + next > memory_budget) {
      stopped_by = "memory budget (" + std::to_string(used) + " MiB of MemAvailable used, " +
                   std::to_string(next) + " MiB more per instance would pass " +
                   std::to_string(memory_budget) + " MiB)";
      break;
    }
    char id[40];
    std::snprintf(id, sizeof id, "inst_0dense%020d", n);
    // Distinct addresses and taps, or the instances would share a network.
    if (!addresses.insert(bench::benchAddress(n)).second ||
        !taps.insert(netdev::tapNameFor(id)).second) {
      stopped_by = std::string("address or tap name collision at ") + id;
      exit_code = 1;
      break;
    }
    plan.push_back(bench::benchSpec(**world, id, n, "sleep"));
    rig.plan(plan);
    auto s = bench::waitForPhase(*agent, id, agent::Phase::kRunning, 180s, interrupted);
    if (!s || s->phase != agent::Phase::kRunning) {
      if (interrupted()) break;
      stopped_by = std::string("boot failure of ") + id + ": " +
                   (s ? s->reason : std::string("not running after 180 s"));
      exit_code = 1;
      break;
    }
    instances.push_back({id, s->vmm_pid});
    if (n > 0) boot_ms.push_back(static_cast<double>(s->timings.boot_ms));
    std::fprintf(stderr, "  [%d/%d] %s READY: VMM pid %d, boot %lld ms, MemAvailable %lld MiB\n",
                 n + 1, f.max, id, static_cast<int>(s->vmm_pid),
                 static_cast<long long>(s->timings.boot_ms),
                 static_cast<long long>(memAvailableMib()));
    const int count = n + 1;
    if (count % f.step != 0 && count != f.max) continue;
    std::fprintf(stderr, "  measuring %d idle instances (%d s settle, %d s window)...\n", count,
                 f.settle_seconds, f.cpu_seconds);
    auto step = measure(instances, f);
    if (!step) break;  // interrupted
    record(*step);
    if (step->cpu_sum > f.cpu_budget_percent) {
      char why[128];
      std::snprintf(why, sizeof why, "CPU budget (idle VMMs together %.2f%% > %.0f%% of a core)",
                    step->cpu_sum, f.cpu_budget_percent);
      stopped_by = why;
      break;
    }
  }
  if (interrupted()) {
    stopped_by = std::string("signal ") + strsignal(g_signal.load());
    exit_code = 128 + g_signal.load();
  }
  // A run stopped between steps is measured where it stopped.
  const int reached = static_cast<int>(instances.size());
  if (reached > 0 && (steps.empty() || steps.back().n != reached) && !interrupted()) {
    std::fprintf(stderr, "  measuring %d idle instances where it stopped...\n", reached);
    if (auto step = measure(instances, f)) record(*step);
  }
  const double minutes =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count() / 60.0;
  std::string accel_file = readFile((*world)->dir->file("accel-probe.json")).value_or("{}");
  const std::string accel = json::parse(accel_file, nullptr, false).value("accel", "?");
  const std::string kernel_args = instances.empty() ? "?" : qemuKernelArgs(instances[0].vmm_pid);
  cleanup.run();
  const int64_t available_after = memAvailableMib();

  const std::string kernel = (*world)->kernel;
  const std::string ticks = kernelTickConfig(kernel);
  if (f.json) {
    json out = {{"reached", reached},
                {"stopped_by", stopped_by},
                {"accel", accel},
                {"cores", std::thread::hardware_concurrency()},
                {"guest_kernel", kernel},
                {"guest_kernel_ticks", ticks},
                {"guest_kernel_args", kernel_args},
                {"mem_available_before_mib", available_before},
                {"mem_available_after_cleanup_mib", available_after},
                {"memory_budget_mib", memory_budget},
                {"cpu_budget_percent", f.cpu_budget_percent},
                {"cpu_seconds", f.cpu_seconds},
                {"boot_ms_p50", quantile(boot_ms, 0.5)},
                {"minutes", minutes},
                {"steps", json::array()}};
    for (const auto& s : steps) out["steps"].push_back(toJson(s));
    std::printf("%s\n", out.dump(2).c_str());
    return exit_code;
  }
  std::printf("guest kernel: %s (%s)\n", kernel.c_str(), ticks.c_str());
  std::printf("guest kernel args (from the first VMM): %s\n", kernel_args.c_str());
  std::printf("qemu accel=%s, %u cores, boot (VMM started -> READY) p50 %.0f ms, %.1f min\n",
              accel.c_str(), std::thread::hardware_concurrency(), quantile(boot_ms, 0.5), minutes);
  if (steps.empty()) {
    std::printf("density_bench: N=%d idle instances (stopped by: %s); no step measured\n", reached,
                stopped_by.c_str());
    return exit_code;
  }
  const Step& last = steps.back();
  std::printf(
      "density_bench: N=%d idle instances (stopped by: %s); at N=%d: PSS p50 %.1f MiB, max "
      "%.1f MiB, total %.1f MiB; idle VMM CPU p50 %.2f%%, max %.2f%%, sum %.2f%% of a core; "
      "MemAvailable %lld MiB before, %lld MiB at N, %lld MiB after cleanup\n",
      reached, stopped_by.c_str(), last.n, last.pss_p50, last.pss_max, last.pss_total, last.cpu_p50,
      last.cpu_max, last.cpu_sum, static_cast<long long>(available_before),
      static_cast<long long>(last.mem_available), static_cast<long long>(available_after));
  return exit_code;
}
