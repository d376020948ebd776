// bench/deploy_bench: the wall time of a rolling deploy of N instances, and
// what the drain gate adds to it, through the real `vt` binary.
//
//   build/bench/deploy_bench [--instances 1,4,8] [--rounds 2] [--drain-grace default,0]
//
// Brings up `vt dev` (PostgreSQL, control plane, registry, node agent with
// QEMU microVMs, ingress) in a private network namespace (root), deploys
// examples/hello, then for each N: `vt scale set web=N`, waits until N
// instances are healthy and answer through the ingress, and times `rounds`
// rolling deploys (GREETING changes each time; the manifest's max_surge = 1,
// max_unavailable = 0) from the start of `vt deploy` to its exit, which is
// when the deploy succeeded, that is when the instances it replaced have
// stopped. The same deploys run per drain grace: the control plane's default
// (drain_grace_ms = 1000) and the peer, grace 0 (the gate still waits for
// every live ingress to acknowledge a config without the instance and for its
// open connections to close, nothing more). The control plane alone restarts
// between them, with drain_grace_ms in STATE/control-plane/config.toml (which
// `vt dev up` passes on); one uncounted deploy warms up after each scale or
// restart. That file also sets cpu_overcommit = 8, so that 8 instances and a
// surge fit on a 2-core node.
// Per drain, `waited_ms` of each instance.drain_released event of the deploy.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dev_process.h"
#include "plfm/core/process.h"
#include "vt_dev_driver.h"

namespace {

using namespace plfm;
using nlohmann::json;
using namespace std::chrono_literals;
using e2e::VtRun;

constexpr const char* kGreeting = "Hello from plfm-vt";

struct Options {
  std::vector<int> instances = {1, 4, 8};
  int rounds = 2;
  std::vector<std::string> graces = {"default", "0"};
};

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

bool parseOptions(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    if (a == "--instances") {
      o.instances.clear();
      for (const auto& n : splitList(v)) o.instances.push_back(std::atoi(n.c_str()));
    } else if (a == "--rounds") {
      o.rounds = std::atoi(v.c_str());
    } else if (a == "--drain-grace") {
      o.graces = splitList(v);
    } else {
      return false;
    }
  }
  return o.rounds > 0 && !o.instances.empty() && !o.graces.empty() &&
         std::all_of(o.instances.begin(), o.instances.end(), [](int n) { return n > 0; });
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(std::lround(q * static_cast<double>(v.size() - 1)));
  return v[std::min(i, v.size() - 1)];
}

// One JSON object per line (`vt ... --format json` of a stream).
std::vector<json> jsonLines(const std::string& text) {
  std::vector<json> out;
  std::stringstream in(text);
  for (std::string l; std::getline(in, l);) {
    json e = json::parse(l, nullptr, false);
    if (e.is_object()) out.push_back(std::move(e));
  }
  return out;
}

struct Figures {
  std::vector<double> deploy_s;  // wall time of each `vt deploy`
  std::vector<double> drain_ms;  // waited_ms of each drain released during them
  double drain_total_ms = 0;
  int drains_expected = 0;
};

class DeployBench : public e2e::VtDevDriver {
 public:
  bool up(const std::string& grace) {
    // cpu_overcommit: the node has 2 cores and the default 4 vCPUs per core;
    // 8 instances of 1 vCPU plus the surge need 9.
    std::string config = "cpu_overcommit = 8\n";
    if (grace != "default") config += "drain_grace_ms = " + grace + "\n";
    std::error_code ec;
    std::filesystem::create_directories(state_->file("control-plane"), ec);
    if (!writeFileAtomic(state_->file("control-plane/config.toml"), config)) return false;
    return vt(upArgs(), 240s).code == 0;
  }

  // Restarts the control plane alone with another drain grace.
  bool switchGrace(const std::string& grace) {
    const pid_t cp = vt::dev::readPidFile(state_->file("run/control-plane.pid"));
    if (cp > 0) (void)vt::dev::stopProcess(cp, SIGTERM, 20s);
    return up(grace);
  }

  bool firstDeploy() {
    ref_ = pushHello();
    if (ref_.find("@sha256:") == std::string::npos) return false;
    manifest_ = readFile(std::string(PLFM_SOURCE_DIR) + "/examples/hello/vt.toml").value_or("");
    if (manifest_.find(kGreeting) == std::string::npos) return false;
    if (deploy(kGreeting).code != 0) return false;
    const std::string port = std::to_string(ingressPort());
    if (vt({"routes", "add", "hello.localhost", "--app", "hello", "--port", "8443",
            "--listener-port", port})
            .code != 0) {
      return false;
    }
    return waitFor("hello.localhost", "::1", "instance: inst_", 120s).find("instance: inst_") !=
           std::string::npos;
  }

  // Scales to n and waits until exactly n instances run healthy and answer.
  bool scale(int n) {
    if (vt({"scale", "set", "web=" + std::to_string(n), "--app", "hello"}).code != 0) return false;
    return waitHealthy(n, 300s);
  }

  // One rolling deploy with a new greeting: its wall time and its drains.
  bool timedDeploy(int n, const std::string& greeting, Figures& f) {
    const int64_t before = lastSeq();
    VtRun d = deploy(greeting);
    if (d.code != 0) {
      std::fprintf(stderr, "vt deploy: exit %d after %.1f s\n%s%s", d.code, d.seconds,
                   d.out.c_str(), d.err.c_str());
      return false;
    }
    f.deploy_s.push_back(d.seconds);
    f.drains_expected += n;
    std::string waited;
    for (const json& e : events()) {
      if (e.value("seq", int64_t{0}) <= before ||
          e.value("event_type", "") != "instance.drain_released") {
        continue;
      }
      const json& p = e["payload"];
      const double ms = p.is_object() ? p.value("waited_ms", 0.0) : 0.0;
      f.drain_ms.push_back(ms);
      f.drain_total_ms += ms;
      waited += (waited.empty() ? "" : " ") + std::to_string(std::lround(ms));
    }
    std::printf("  N=%d %s: deploy %.1f s; drains released, waited_ms: %s\n", n, greeting.c_str(),
                d.seconds, waited.c_str());
    std::fflush(stdout);
    // The next round starts from a settled state: n healthy, answering.
    return waitHealthy(n, 120s) &&
           waitFor("hello.localhost", "::1", "greeting: " + greeting + "\n", 60s).find(greeting) !=
               std::string::npos;
  }

  void down() { (void)vt({"dev", "down", "--state-dir", state_->path()}, 180s); }

 private:
  VtRun deploy(const std::string& greeting) {
    std::string t = manifest_;
    t.replace(t.find(kGreeting), std::string(kGreeting).size(), greeting);
    (void)writeFileAtomic(io_->file("vt-bench.toml"), t);
    return vt({"deploy", "--manifest", io_->file("vt-bench.toml"), "--image", ref_, "--timeout",
               "5m", "--app", "hello"},
              360s, {}, false);
  }

  bool waitHealthy(int n, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      VtRun r = vt({"instances", "list", "--app", "hello", "--format", "json"}, 60s, {}, false);
      json list = json::parse(r.out, nullptr, false);
      int healthy = 0;
      int live = 0;
      if (list.is_object()) {
        for (const auto& i : list.value("items", json::array())) {
          const std::string state = i.value("current_state", "");
          if (state != "stopped") ++live;
          if (state == "healthy") ++healthy;
        }
      }
      if (healthy == n && live == n) return true;
      std::this_thread::sleep_for(500ms);
    }
    std::fprintf(stderr, "not %d healthy instances after %llds\n", n,
                 static_cast<long long>(timeout.count()));
    return false;
  }

  std::vector<json> events() {
    return jsonLines(vt({"events", "tail", "-n", "1000", "--format", "json"}, 60s, {}, false).out);
  }

  int64_t lastSeq() {
    int64_t seq = 0;
    for (const json& e :
         jsonLines(vt({"events", "tail", "-n", "1", "--format", "json"}, 60s, {}, false).out)) {
      seq = std::max<int64_t>(seq, e.value("seq", int64_t{0}));
    }
    return seq;
  }

  std::string ref_;
  std::string manifest_;
};

void report(const Options& o, const std::map<std::pair<std::string, int>, Figures>& all) {
  std::printf("\nrolling deploy of N instances, `vt deploy` start to exit (succeeded), %d rounds\n",
              o.rounds);
  std::printf("%-8s %3s %8s %8s %8s  %6s %9s %9s %10s\n", "grace", "N", "p50 s", "min s", "max s",
              "drains", "drain p50", "drain max", "drain/wall");
  for (int n : o.instances) {
    for (const auto& g : o.graces) {
      auto it = all.find({g, n});
      if (it == all.end()) continue;
      const Figures& f = it->second;
      double wall = 0;
      for (double s : f.deploy_s) wall += s;
      std::printf("%-8s %3d %8.1f %8.1f %8.1f  %3zu/%-3d %6.0f ms %6.0f ms %9.0f%%\n",
                  g == "default" ? "1000 ms" : (g + " ms").c_str(), n, quantile(f.deploy_s, 0.5),
                  quantile(f.deploy_s, 0), quantile(f.deploy_s, 1), f.drain_ms.size(),
                  f.drains_expected, quantile(f.drain_ms, 0.5), quantile(f.drain_ms, 1),
                  wall > 0 ? 100.0 * f.drain_total_ms / (wall * 1000.0) : 0.0);
    }
    auto base = all.find({o.graces.back(), n});
    auto with = all.find({o.graces.front(), n});
    if (o.graces.size() > 1 && base != all.end() && with != all.end()) {
      std::printf("%-8s %3d %+8.1f s p50 (%s vs %s)\n", "added", n,
                  quantile(with->second.deploy_s, 0.5) - quantile(base->second.deploy_s, 0.5),
                  o.graces.front().c_str(), o.graces.back().c_str());
    }
  }
  std::printf(
      "drains: instance.drain_released events during the deploys (released/replaced); "
      "drain/wall: the sum of their waited_ms over the sum of deploy wall times\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parseOptions(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: deploy_bench [--instances 1,4,8] [--rounds 2] "
                 "[--drain-grace default,0]\n");
    return 2;
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "deploy_bench needs root (taps, a network namespace)\n");
    return 2;
  }
  // Before any thread starts.
  if (auto r = e2e::enterPrivateNetwork(); !r) {
    std::fprintf(stderr, "%s\n", r.error().toString().c_str());
    return 1;
  }
  std::string cpu = readFile("/proc/cpuinfo").value_or("");
  const auto at = cpu.find("model name");
  cpu = at == std::string::npos ? "?" : cpu.substr(at, cpu.find('\n', at) - at);
  std::printf("%s; %u cores; QEMU (TCG unless KVM works)\n", cpu.c_str(),
              std::thread::hardware_concurrency());

  DeployBench b;
  std::string grace = o.graces.front();
  bool ok = b.up(grace) && b.firstDeploy();
  std::map<std::pair<std::string, int>, Figures> all;
  int serial = 0;
  for (int n : o.instances) {
    for (const auto& g : o.graces) {
      if (!ok) break;
      if (g != grace) {
        ok = b.switchGrace(g);
        grace = g;
      }
      ok = ok && b.scale(n);
      // One deploy to warm up after a scale or a control-plane restart (the
      // ingress reconnects its edge feed); not counted.
      Figures warmup;
      ok = ok && b.timedDeploy(n, "bench " + std::to_string(++serial) + " (warm-up)", warmup);
      for (int r = 0; ok && r < o.rounds; ++r) {
        ok = b.timedDeploy(n, "bench " + std::to_string(++serial), all[{g, n}]);
      }
    }
  }
  report(o, all);
  b.down();
  if (!ok) std::fprintf(stderr, "deploy_bench: stopped early (see above)\n");
  return ok ? 0 : 1;
}
