#include "agent_bench_support.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "plfm/core/assert.h"
#include "plfm/core/process.h"
#include "support/agent_options.h"

namespace plfm::bench {

using nlohmann::json;
using namespace std::chrono_literals;

Result<std::unique_ptr<agent::testing::AgentWorld>> makeBenchWorld() {
  PLFM_TRY(agent::testing::enterPrivateNetns());
  return agent::testing::makeAgentWorld(PLFM_SOURCE_DIR, PLFM_VT_INIT_BIN, PLFM_TEST_WORKLOAD_BIN);
}

std::string benchAddress(int n) {
  PLFM_ASSERT(n >= 0 && n <= kMaxBenchInstance, "bench instance number out of range");
  char addr[64];
  std::snprintf(addr, sizeof addr, "fd7a:5c00:0:1::%x", n + 2);
  return addr;
}

json benchSpec(const agent::testing::AgentWorld& world, const std::string& id, int n,
               const std::string& mode) {
  return agent::testing::workloadSpec(world, id, "org_0bench00000000000000000000", {mode},
                                      benchAddress(n));
}

BenchAgent::BenchAgent(const agent::testing::AgentWorld& world, runtime::QemuOptions qemu)
    : world_(world), qemu_(std::move(qemu)) {}

Result<std::unique_ptr<agent::Agent>> BenchAgent::start(const std::string& state_dir) {
  agent::AgentOptions o = agent::testing::planFileAgentOptions(world_, state_dir);
  o.shutdown_grace_ms = 2000;
  plan(o.plan_file, json::array());
  runtime::QemuOptions q = qemu_;
  q.probe_dir = world_.dir->path();
  auto a = std::make_unique<agent::Agent>(o, std::make_unique<runtime::QemuRuntime>(q));
  PLFM_TRY(a->start());
  plan_path_ = o.plan_file;
  return a;
}

void BenchAgent::plan(const std::string& path, const json& instances) {
  json p = {{"node_id", "node_b"}, {"version", ++version_}, {"instances", instances}};
  (void)writeFileAtomic(path, p.dump());
}

void BenchAgent::plan(const json& instances) { plan(plan_path_, instances); }

std::optional<agent::InstanceStatus> waitForPhase(agent::Agent& agent, const std::string& id,
                                                  agent::Phase phase, std::chrono::seconds timeout,
                                                  bool (*interrupted)()) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    for (const auto& s : agent.instances()) {
      if (s.instance_id == id && (s.phase == phase || agent::isTerminal(s.phase))) return s;
    }
    if (interrupted != nullptr && interrupted()) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
  return std::nullopt;
}

bool waitUntilFinished(agent::Agent& agent, const std::string& id, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto all = agent.instances();
    if (std::none_of(all.begin(), all.end(), [&](const agent::InstanceStatus& s) {
          return s.instance_id == id && !agent::isTerminal(s.phase);
        })) {
      return true;
    }
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(std::lround(q * static_cast<double>(v.size() - 1)));
  return v[std::min(i, v.size() - 1)];
}

long smapsRollupKb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

PssByMapping pssByMapping(pid_t pid, const std::string& kernel_path, long guest_ram_kb) {
  PssByMapping out;
  std::error_code ec;
  const std::string kernel = std::filesystem::weakly_canonical(kernel_path, ec).string();
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
  std::string line;
  long* current = nullptr;
  while (std::getline(in, line)) {
    // A mapping's header: "start-end perms offset dev inode [path]".
    const auto dash = line.find('-');
    const auto space = line.find(' ');
    if (dash != std::string::npos && space != std::string::npos && dash < space &&
        line.find(':') > space) {
      const unsigned long start = std::strtoul(line.c_str(), nullptr, 16);
      const unsigned long end = std::strtoul(line.c_str() + dash + 1, nullptr, 16);
      const long size_kb = static_cast<long>((end - start) / 1024);
      std::istringstream fields(line);
      std::string range, perms, offset, dev, inode, path;
      fields >> range >> perms >> offset >> dev >> inode;
      std::getline(fields >> std::ws, path);
      if (!path.empty() && path.front() == '/') {
        current = path == kernel ? &out.kernel : &out.qemu_files;
      } else if (path.empty() && size_kb >= guest_ram_kb) {
        current = &out.guest_ram;
      } else if (path.empty() && perms.size() > 2 && perms[2] == 'x') {
        current = &out.tcg_cache;
      } else {
        current = &out.other_anon;
      }
      continue;
    }
    if (current != nullptr && line.rfind("Pss:", 0) == 0) *current += std::atol(line.c_str() + 4);
  }
  return out;
}

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

double cpuPercent(long ticks_before, long ticks_after, double seconds) {
  const auto hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  return static_cast<double>(ticks_after - ticks_before) / hz * 100.0 / seconds;
}

}  // namespace plfm::bench
