// What bench/agent_bench and bench/density_bench share: a real node agent on
// a plan file driving real microVMs (AgentWorld: kernel, vt-init initramfs,
// a registry on loopback, the static test workload image), the WorkloadSpec
// each bench instance gets, and the /proc readings both report (PSS from
// smaps_rollup, utime + stime).
//
//   PLFM_ASSIGN_OR_RETURN(auto world, makeBenchWorld());   // enters a private netns
//   BenchAgent bench(*world, qemu_options);
//   PLFM_ASSIGN_OR_RETURN(auto agent, bench.start(state_dir));
//   bench.plan(json::array({benchSpec(*world, id, n, "sleep")}));
//   waitForPhase(*agent, id, agent::Phase::kRunning, 120s);
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "plfm/core/result.h"
#include "runtime/qemu_runtime.h"
#include "support/agent_world.h"

namespace plfm::bench {

// Moves this process into a fresh network namespace (so every tap and route
// goes with it) and builds the AgentWorld from the build tree's vt-init and
// test workload. Call before any thread starts; needs root.
[[nodiscard]] Result<std::unique_ptr<agent::testing::AgentWorld>> makeBenchWorld();

// The spec of bench instance number `n`: the world's image running `mode`
// (e.g. "sleep"), 128 MiB, at fd7a:5c00:0:1::<n + 2>. n is in [0, kMaxBenchInstance].
inline constexpr int kMaxBenchInstance = 0xfff0;
[[nodiscard]] nlohmann::json benchSpec(const agent::testing::AgentWorld& world,
                                       const std::string& id, int n, const std::string& mode);
// The IPv6 address benchSpec() gives instance `n`.
[[nodiscard]] std::string benchAddress(int n);

// A node agent on a plan file, with the bench's options: 64 MiB scratch disks,
// a 2 s shutdown grace, and every instance stopped when the agent stops.
class BenchAgent {
 public:
  BenchAgent(const agent::testing::AgentWorld& world, runtime::QemuOptions qemu);

  // A started agent whose state lives under `state_dir`, with an empty plan.
  [[nodiscard]] Result<std::unique_ptr<agent::Agent>> start(const std::string& state_dir);
  // Writes the next plan version with `instances` (WorkloadSpecs).
  void plan(const nlohmann::json& instances);

 private:
  void plan(const std::string& path, const nlohmann::json& instances);

  const agent::testing::AgentWorld& world_;
  runtime::QemuOptions qemu_;
  std::string plan_path_;
  int64_t version_ = 0;
};

// The instance's status once it reaches `phase` or a terminal phase; nullopt
// after `timeout`. `interrupted`, when set, is polled and ends the wait early.
[[nodiscard]] std::optional<agent::InstanceStatus> waitForPhase(agent::Agent& agent,
                                                                const std::string& id,
                                                                agent::Phase phase,
                                                                std::chrono::seconds timeout,
                                                                bool (*interrupted)() = nullptr);

// True once the instance is in a terminal phase or no longer listed (the
// agent lists no instance whose worker has finished, that is whose VMM is
// gone); false after `timeout`.
[[nodiscard]] bool waitUntilFinished(agent::Agent& agent, const std::string& id,
                                     std::chrono::seconds timeout);

// The q-quantile (0..1, nearest rank) of `v`; 0 when empty.
[[nodiscard]] double quantile(std::vector<double> v, double q);

// kB of a /proc/PID/smaps_rollup field ("Rss", "Pss"); -1 when unreadable.
[[nodiscard]] long smapsRollupKb(pid_t pid, const std::string& field);

// Where a VMM's PSS goes, in kB, from /proc/PID/smaps: each mapping goes to
// the first class it fits.
struct PssByMapping {
  long guest_ram = 0;   // the anonymous mapping of at least the guest's RAM
  long tcg_cache = 0;   // an anonymous executable mapping (TCG's translated code)
  long kernel = 0;      // the guest kernel file (QEMU's ELF loader keeps it mapped)
  long qemu_files = 0;  // every other file: QEMU's binary, libraries, firmware
  long other_anon = 0;  // heap, malloc arenas, thread stacks, the rest
};
[[nodiscard]] PssByMapping pssByMapping(pid_t pid, const std::string& kernel_path,
                                        long guest_ram_kb);

// utime + stime of a process, in clock ticks; -1 when unreadable.
[[nodiscard]] long cpuTicks(pid_t pid);

// % of one core that `pid` used between two cpuTicks() readings `seconds` apart.
[[nodiscard]] double cpuPercent(long ticks_before, long ticks_after, double seconds);

}  // namespace plfm::bench
