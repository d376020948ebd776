// bench/exec_bench: what `vt exec` costs a user, through the real `vt`
// binary, the control plane's ticket and relay, the node agent's endpoint and
// vt-init in a real microVM (docs/specs/runtime/exec-sessions.md).
//
//   build/bench/exec_bench [--runs 100] [--mib 1024] [--sessions 20]
//
// Brings up `vt dev` in a private network namespace (root), deploys
// examples/hello (whose image carries busybox), then measures:
//   - latency: `vt exec --app hello -- true`, `runs` times, wall time from
//     spawning vt to its exit (POST the ticket, the WebSocket, the relay to
//     the agent, EXEC_OPEN, the process, EXIT), p50/p90/p99;
//   - throughput: `mib` MiB of random bytes through `vt exec -i -- cat`,
//     piped (no disk), checked byte-exact with sha256 at both ends, MB/s;
//   - memory: the peak RSS (sampled every 50 ms) of the node agent and the
//     control plane while `sessions` sessions each stream 64 MiB of output
//     at once, against their RSS before.
// The anchor is Fly's `fly ssh console -C echo`, about 3.5 s by a third-party
// measurement (the figure); there is no local peer to run.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "plfm/core/process.h"
#include "vt_dev_driver.h"

namespace {

using namespace plfm;
using nlohmann::json;
using namespace std::chrono_literals;
using e2e::VtRun;
using Clock = std::chrono::steady_clock;

struct Options {
  int runs = 100;
  int mib = 1024;
  int sessions = 20;
};

bool parseOptions(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return false;
    const int v = std::atoi(argv[++i]);
    if (v <= 0) return false;
    if (a == "--runs") {
      o.runs = v;
    } else if (a == "--mib") {
      o.mib = v;
    } else if (a == "--sessions") {
      o.sessions = v;
    } else {
      return false;
    }
  }
  return true;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// VmRSS of `pid` in KiB (0 when gone).
int64_t rssKib(pid_t pid) {
  const std::string status = readFile("/proc/" + std::to_string(pid) + "/status").value_or("");
  const auto at = status.find("VmRSS:");
  if (at == std::string::npos) return 0;
  return std::atoll(status.c_str() + at + 6);
}

class ExecBench : public e2e::VtDevDriver {
 public:
  bool up() {
    if (vt(upArgs(), 240s).code != 0) return false;
    const std::string ref = pushHello();
    if (ref.find("@sha256:") == std::string::npos) return false;
    const std::string manifest = std::string(PLFM_SOURCE_DIR) + "/examples/hello/vt.toml";
    if (vt({"deploy", "--manifest", manifest, "--image", ref, "--timeout", "4m"}, 300s).code != 0) {
      return false;
    }
    // Warm: the first sessions pay for the TLS session cache, page faults, ...
    for (int i = 0; i < 3; ++i) {
      if (exec({"true"}).code != 0) return false;
    }
    return true;
  }
  void down() { (void)vt({"dev", "down", "--state-dir", state_->path()}, 120s); }

  VtRun exec(const std::vector<std::string>& cmd) {
    std::vector<std::string> args = {"exec", "--app", "hello", "--"};
    args.insert(args.end(), cmd.begin(), cmd.end());
    return vt(args, 120s, {}, false);
  }

  std::vector<double> latency(int runs) {
    std::vector<double> ms;
    for (int i = 0; i < runs; ++i) {
      VtRun r = exec({"true"});
      if (r.code != 0) {
        std::fprintf(stderr, "vt exec -- true: exit %d: %s\n", r.code, r.err.c_str());
        return {};
      }
      ms.push_back(r.seconds * 1000);
    }
    return ms;
  }

  // MB/s of `mib` MiB through `cat`, or -1 when the bytes differ.
  double throughput(int mib) {
    std::string env;
    for (const auto& e : vtEnv()) env += " " + shellQuote(e);
    const std::string in_sha = io_->file("in.sha");
    const std::string out_sha = io_->file("out.sha");
    const std::string cmd = "set -o pipefail; head -c " + std::to_string(int64_t{mib} << 20) +
                            " /dev/urandom | tee >(sha256sum > " + in_sha + ") | env" + env + " " +
                            shellQuote(vtBinary()) + " exec -i --app hello -- cat | sha256sum > " +
                            out_sha;
    const auto t0 = Clock::now();
    const int rc = std::system(("bash -c " + shellQuote(cmd)).c_str());
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::this_thread::sleep_for(200ms);  // the tee's sha256sum
    const std::string a = readFile(in_sha).value_or("a");
    const std::string b = readFile(out_sha).value_or("b");
    std::printf("throughput: %d MiB in %.1f s, sha256 %s\n", mib, s,
                rc == 0 && a == b ? "equal" : "DIFFERENT");
    if (rc != 0 || a != b) return -1;
    return static_cast<double>(int64_t{mib} << 20) / 1e6 / s;
  }

  struct Memory {
    int64_t agent_before = 0, agent_peak = 0, cp_before = 0, cp_peak = 0;
    bool ok = false;
  };
  Memory memory(int sessions) {
    Memory m;
    json st = json::parse(
        vt({"dev", "status", "--state-dir", state_->path(), "--format", "json"}, 60s, {}, false)
            .out,
        nullptr, false);
    pid_t agent = -1;
    pid_t cp = -1;
    for (const auto& c : st.value("components", json::array())) {
      if (c.value("name", "") == "node-agent") agent = c.value("pid", -1);
      if (c.value("name", "") == "control-plane") cp = c.value("pid", -1);
    }
    if (agent <= 0 || cp <= 0) return m;
    m.agent_before = m.agent_peak = rssKib(agent);
    m.cp_before = m.cp_peak = rssKib(cp);
    std::atomic<bool> done{false};
    std::thread sampler([&] {
      while (!done) {
        m.agent_peak = std::max(m.agent_peak, rssKib(agent));
        m.cp_peak = std::max(m.cp_peak, rssKib(cp));
        std::this_thread::sleep_for(50ms);
      }
    });
    std::vector<Process> procs;
    for (int i = 0; i < sessions; ++i) {
      SpawnOptions o;
      o.env = vtEnv();  // output to /dev/null
      auto p = spawn(
          {vtBinary(), "exec", "--app", "hello", "--", "head", "-c", "67108864", "/dev/zero"}, o);
      if (p) procs.push_back(std::move(*p));
    }
    bool all = procs.size() == static_cast<size_t>(sessions);
    for (auto& p : procs) {
      auto s = p.waitFor(600s);
      all = all && s && exitCodeOf(*s) == 0;
    }
    done = true;
    sampler.join();
    m.ok = all;
    return m;
  }
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parseOptions(argc, argv, o)) {
    std::fprintf(stderr, "usage: exec_bench [--runs 100] [--mib 1024] [--sessions 20]\n");
    return 2;
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "exec_bench needs root (taps, a network namespace)\n");
    return 2;
  }
  if (auto r = e2e::enterPrivateNetwork(); !r) {
    std::fprintf(stderr, "%s\n", r.error().toString().c_str());
    return 1;
  }
  std::string cpu = readFile("/proc/cpuinfo").value_or("");
  const auto at = cpu.find("model name");
  cpu = at == std::string::npos ? "?" : cpu.substr(at, cpu.find('\n', at) - at);
  std::printf("%s; %u cores; QEMU (KVM if it works, else TCG)\n", cpu.c_str(),
              std::thread::hardware_concurrency());
  ExecBench b;
  if (!b.up()) {
    std::fprintf(stderr, "exec_bench: the platform did not come up\n");
    b.down();
    return 1;
  }
  const std::vector<double> ms = b.latency(o.runs);
  const double mbs = b.throughput(o.mib);
  const auto mem = b.memory(o.sessions);
  std::printf("\n| what | figure |\n|---|---|\n");
  if (!ms.empty()) {
    std::printf("| `vt exec -- true`, %zu runs | p50 %.0f ms, p90 %.0f ms, p99 %.0f ms |\n",
                ms.size(), percentile(ms, 0.5), percentile(ms, 0.9), percentile(ms, 0.99));
  }
  std::printf(
      "| %d MiB through `vt exec -i -- cat` | %s |\n", o.mib,
      mbs < 0 ? "FAILED (bytes differ)" : (std::to_string(mbs).substr(0, 6) + " MB/s").c_str());
  if (mem.ok) {
    std::printf(
        "| RSS during %d sessions streaming 64 MiB each | agent %.1f -> peak %.1f MiB; "
        "control plane %.1f -> peak %.1f MiB |\n",
        o.sessions, static_cast<double>(mem.agent_before) / 1024,
        static_cast<double>(mem.agent_peak) / 1024, static_cast<double>(mem.cp_before) / 1024,
        static_cast<double>(mem.cp_peak) / 1024);
  } else {
    std::printf("| RSS during %d sessions | FAILED (a session did not exit 0) |\n", o.sessions);
  }
  std::printf("| anchor: `fly ssh console -C echo` | about 3.5 s (third-party measurement) |\n");
  b.down();
  return !ms.empty() && mbs > 0 && mem.ok ? 0 : 1;
}
