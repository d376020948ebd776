// A multi-host cluster on one machine (docs/specs/networking/mesh.md, "The
// multi-host harness"): `vt dev up --nodes 3` runs hosts B and C in network
// namespaces joined by a bridge underlay, one agent each, and host A (this
// test's private network namespace) runs the control plane, the registry, the
// ingress and agent A. examples/hello with 3 instances lands on the 3 nodes;
// each instance answers on its own host; `vt exec` and `vt logs` reach the
// ones on hosts B and C through the control plane's relay; curl through the
// ingress on host A reaches all three over the mesh. Then, with `hello probe`
// run in the guests by `vt exec`: host B's instance resolves
// web.hello.internal and reaches host C's; a second org's instance reaches
// none of the first org's (nor they it); once key rotation is built, host C's
// key rotates under a 10 packets/s ping from host B's instance with at most 1
// lost; host B stopped (`vt dev host stop`): its instance is replaced on A or
// C and never answers through the ingress again; host D added (`vt dev host
// add`): reachable from host A within 2 s and given the next placement; 1%
// loss on the underlay bridge (nftables) during a rolling deploy and the
// checks; `vt dev up` brings host B back. `vt dev down` leaves no namespace,
// process, interface or tap, and a second `down` finds nothing.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dev_hosts.h"
#include "dev_process.h"
#include "netns_environment.h"
#include "plfm/core/process.h"
#include "plfm/testing/failure_summary.h"
#include "plfm/testing/temp_dir.h"
#include "vt_dev_driver.h"

namespace plfm {
namespace {

const void* const kFailureSummary = plfm::testing::installFailureSummary();
const auto* const kEnv = e2e::addPrivateNetworkEnvironment("vt mesh e2e");

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using e2e::VtRun;

constexpr int kNodes = 3;

class VtMesh : public ::testing::Test, public e2e::VtDevDriver {
 protected:
  VtMesh() : e2e::VtDevDriver(kNodes) {}

  void TearDown() override {
    // Whatever happened, stop the platform (a no-op after a clean down).
    (void)vt({"dev", "down", "--state-dir", state_->path()}, 180s);
  }

  json vtJson(const std::vector<std::string>& args) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--format", "json"});
    return json::parse(vt(a, 60s, {}, false).out, nullptr, false);
  }

  // One HTTPS request to `address`:8443 from inside `netns` ("" for host A).
  std::string curlFrom(const std::string& netns, const std::string& address) {
    std::vector<std::string> argv;
    if (!netns.empty()) argv = {"nsenter", "--net=/run/netns/" + netns, "--"};
    argv.insert(argv.end(),
                {"curl", "-sS", "-k", "--max-time", "5", "https://[" + address + "]:8443/"});
    SpawnOptions so;
    so.stdout_path = io_->file("curl-host.out");
    so.stderr_path = io_->file("curl-host.err");
    std::error_code ec;
    std::filesystem::remove(so.stdout_path, ec);
    auto r = runChecked(argv, so);
    return r ? readFile(so.stdout_path).value_or("") : "";
  }

  // `hello probe ARGS...` inside instance `id` through `vt exec` (the image
  // has no tools; examples/hello/README.md, "Probes"), as org `org` ("": the
  // context's). The probe's exit code and its one line.
  struct Probe {
    int code = -1;
    std::string line;
  };
  Probe probe(const std::string& org, const std::string& id, const std::vector<std::string>& args,
              std::chrono::seconds timeout = 60s) {
    std::vector<std::string> a = {"exec", "--app", "hello", "--instance", id};
    if (!org.empty()) a.insert(a.end(), {"--org", org});
    a.insert(a.end(), {"--", "hello", "probe"});
    a.insert(a.end(), args.begin(), args.end());
    const VtRun r = vt(a, timeout);
    Probe p{r.code, ""};
    for (size_t at = 0; at < r.out.size();) {
      const size_t end = std::min(r.out.find('\n', at), r.out.size());
      const std::string l = r.out.substr(at, end - at);
      if (l.rfind(args[0] + " ", 0) == 0) p.line = l;
      at = end + 1;
    }
    return p;
  }

  // The healthy instances of app hello in `org` ("": the context's), lost
  // ones left out.
  json healthyHello(const std::string& org = "") {
    std::vector<std::string> a = {"instances", "list", "--app", "hello"};
    if (!org.empty()) a.insert(a.end(), {"--org", org});
    json out = json::array();
    for (const auto& i : vtJson(a).value("items", json::array())) {
      // A lost instance (its node stopped answering) keeps its last state.
      if (i.value("current_state", "") == "healthy" && !i.value("lost", false)) out.push_back(i);
    }
    return out;
  }

  // Polls healthyHello(org) every 500 ms until `done` holds of it or the
  // time is up; returns the last list.
  json waitHealthyHello(const std::string& org, const std::function<bool(const json&)>& done,
                        std::chrono::seconds timeout) {
    json list;
    for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
      list = healthyHello(org);
      if (done(list)) break;
      std::this_thread::sleep_for(500ms);
    }
    return list;
  }

  // The active node at `underlay`, or null.
  json nodeAt(const std::string& underlay) {
    for (const auto& n : vtJson({"nodes", "list"}).value("items", json::array())) {
      if (n.value("underlay_address", "") == underlay && n.value("state", "") == "active") {
        return n;
      }
    }
    return nullptr;
  }
};

// The value of `key=value` in a probe's line, or "".
std::string field(const std::string& line, const std::string& key) {
  size_t at = line.rfind(key + "=", 0) == 0 ? 0 : line.find(" " + key + "=");
  if (at == std::string::npos) return "";
  at = line.find('=', at) + 1;
  return line.substr(at, line.find(' ', at) - at);
}

// The instance of `list` on `node_id`, or null.
json onNode(const json& list, const std::string& node_id) {
  for (const auto& i : list) {
    if (i.value("node_id", "") == node_id) return i;
  }
  return nullptr;
}

// The value of "key: value" in hello's answer, or "".
std::string line(const std::string& answer, const std::string& key) {
  const auto at = answer.find(key + ": ");
  if (at == std::string::npos) return "";
  const auto start = at + key.size() + 2;
  return answer.substr(start, answer.find('\n', start) - start);
}

bool netnsExists(const std::string& name) { return std::filesystem::exists("/run/netns/" + name); }

TEST_F(VtMesh, ThreeHostsOneAppReachableThroughTheIngress) {
  phase("vt dev up --nodes 3");
  VtRun up = vt(upArgs(), 300s);
  ASSERT_EQ(up.code, 0) << up.err;
  for (const char* c : {"hosts", "node-agent-b", "node-agent-c"}) {
    EXPECT_NE(up.err.find(c), std::string::npos) << c;
  }
  const json st = vtJson({"dev", "status", "--state-dir", state_->path()});
  ASSERT_TRUE(st.is_object());
  ASSERT_EQ(st["hosts"].size(), static_cast<size_t>(kNodes)) << st.dump();
  std::map<std::string, std::string> netns_of;  // underlay address -> namespace ("" for A)
  std::vector<std::string> namespaces;
  for (const auto& h : st["hosts"]) {
    EXPECT_EQ(h.value("agent_health", ""), "healthy") << h.dump();
    const std::string ns = h["netns"].is_string() ? h["netns"].get<std::string>() : "";
    netns_of[h.value("underlay_address", "")] = ns;
    if (!ns.empty()) {
      EXPECT_TRUE(netnsExists(ns)) << ns;
      namespaces.push_back(ns);
    }
  }
  ASSERT_EQ(namespaces.size(), static_cast<size_t>(kNodes - 1));
  // plfm-<tag>-b: the underlay bridge's namespace is plfm-<tag>-ul.
  namespaces.push_back(namespaces[0].substr(0, namespaces[0].rfind('-')) + "-ul");
  EXPECT_TRUE(netnsExists(namespaces.back())) << namespaces.back();
  for (const auto& c : st["components"]) EXPECT_EQ(c["health"], "healthy") << c.dump();

  // Every agent enrolled from its own host, with its underlay address.
  std::map<std::string, std::string> underlay_of;  // node id -> underlay address
  const json nodes = vtJson({"nodes", "list"});
  for (const auto& n : nodes.value("items", json::array())) {
    if (n.value("state", "") == "active") {
      underlay_of[n.value("id", "")] = n.value("underlay_address", "");
    }
  }
  ASSERT_EQ(underlay_of.size(), static_cast<size_t>(kNodes)) << nodes.dump();
  for (const auto& [id, underlay] : underlay_of) {
    EXPECT_TRUE(netns_of.contains(underlay)) << id << " at " << underlay;
  }

  phase("build, push and deploy examples/hello; scale to 3");
  const std::string ref = pushHello();
  ASSERT_NE(ref.find("@sha256:"), std::string::npos) << ref;
  const std::string manifest = std::string(PLFM_SOURCE_DIR) + "/examples/hello/vt.toml";
  VtRun deploy = vt({"deploy", "--manifest", manifest, "--image", ref, "--timeout", "3m"}, 240s);
  ASSERT_EQ(deploy.code, 0) << deploy.err;
  const std::string port = std::to_string(ingressPort());
  ASSERT_EQ(vt({"routes", "add", "hello.localhost", "--app", "hello", "--port", "8443",
                "--listener-port", port})
                .code,
            0);
  ASSERT_EQ(vt({"scale", "set", "web=" + std::to_string(kNodes), "--app", "hello"}).code, 0);

  phase("the 3 instances run on 3 distinct nodes");
  json healthy;
  for (auto deadline = Clock::now() + 180s; Clock::now() < deadline;) {
    const json list = vtJson({"instances", "list", "--app", "hello"});
    healthy = json::array();
    for (const auto& i : list.value("items", json::array())) {
      if (i.value("current_state", "") == "healthy") healthy.push_back(i);
    }
    if (healthy.size() >= static_cast<size_t>(kNodes)) break;
    std::this_thread::sleep_for(1s);
  }
  ASSERT_EQ(healthy.size(), static_cast<size_t>(kNodes)) << healthy.dump();
  std::set<std::string> on_nodes;
  for (const auto& i : healthy) on_nodes.insert(i.value("node_id", ""));
  EXPECT_EQ(on_nodes.size(), static_cast<size_t>(kNodes)) << healthy.dump();

  phase("each instance answers on its own host");
  for (const auto& i : healthy) {
    const std::string id = i.value("id", "");
    const std::string underlay = underlay_of[i.value("node_id", "")];
    const std::string answer = curlFrom(netns_of[underlay], i.value("address", ""));
    EXPECT_EQ(line(answer, "instance"), id)
        << id << " at " << i.value("address", "") << " from the host at " << underlay;
  }

  phase("vt exec and vt logs reach instances on hosts B and C (relayed over the underlay)");
  for (const auto& i : healthy) {
    const std::string id = i.value("id", "");
    if (netns_of[underlay_of[i.value("node_id", "")]].empty()) continue;  // host A's
    VtRun exec = vt({"exec", "--app", "hello", "--instance", id, "--", "echo", "relayed-" + id});
    EXPECT_EQ(exec.code, 0) << exec.err;
    EXPECT_NE(exec.out.find("relayed-" + id), std::string::npos) << exec.out;
    VtRun logs = vt({"logs", "--app", "hello", "--instance", id, "--tail", "5"});
    EXPECT_EQ(logs.code, 0) << logs.err;
    // The last 5 lines: the start-up line, or (on a slow machine, once the
    // health checks have pushed it out) the health checks' request lines.
    EXPECT_TRUE(logs.out.find("listening https=") != std::string::npos ||
                logs.out.find("path=/healthz") != std::string::npos)
        << logs.out;
  }

  phase("curl through the ingress on host A reaches all three (over the mesh)");
  std::set<std::string> seen;
  std::map<std::string, int> answers;
  for (auto deadline = Clock::now() + 90s;
       seen.size() < static_cast<size_t>(kNodes) && Clock::now() < deadline;) {
    const std::string id = line(curl("hello.localhost", "::1"), "instance");
    if (!id.empty()) {
      seen.insert(id);
      ++answers[id];
    }
    std::this_thread::sleep_for(100ms);
  }
  for (const auto& [id, n] : answers) std::printf("  %s answered %d times\n", id.c_str(), n);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kNodes))
      << "distinct instances answering through the ingress on host A";

  phase("every host's mesh: 2 peers, each with its route and a handshake (mesh status)");
  // plfm-<tag>-b: host X's mesh interface is wg-<tag>-x.
  const std::string mesh_prefix = "wg-" + namespaces[0].substr(5, namespaces[0].rfind('-') - 4);
  for (const auto& h : st["hosts"]) {
    const std::string letter = h.value("host", "");
    const std::string ns = h["netns"].is_string() ? h["netns"].get<std::string>() : "";
    std::vector<std::string> argv;
    if (!ns.empty()) argv = {"nsenter", "--net=/run/netns/" + ns, "--"};
    argv.insert(argv.end(), {PLFM_NODE_AGENT_BIN, "mesh", "status", "--state-dir",
                             state_->file(h.value("agent", "")), "--mesh-interface",
                             mesh_prefix + letter, "--format", "json"});
    SpawnOptions so;
    so.stdout_path = io_->file("mesh-status-" + letter + ".json");
    auto r = runChecked(argv, so);
    ASSERT_TRUE(r) << "mesh status on host " << letter << ": " << r.error().toString();
    const json ms = json::parse(readFile(so.stdout_path).value_or(""), nullptr, false);
    ASSERT_TRUE(ms.is_object()) << letter;
    EXPECT_EQ(ms.value("up", false), true) << ms.dump();
    ASSERT_EQ(ms.value("peers", json::array()).size(), static_cast<size_t>(kNodes - 1))
        << ms.dump();
    for (const auto& p : ms["peers"]) {
      EXPECT_TRUE(p.value("route", false)) << "host " << letter << ": " << p.dump();
      // Hosts B and C both handshook with A (the ingress's traffic).
      if (letter != "a" && p.value("endpoint", "").find("fd00:5c::a") != std::string::npos) {
        EXPECT_TRUE(p["handshake_age_seconds"].is_number())
            << "host " << letter << ": " << p.dump();
      }
    }
  }

  // The later steps (mesh.md, "The e2e's later steps"): inside guests, then
  // hosts lost and added, then a lossy underlay. Each figure is printed.
  const std::string kUnderlayB = "fd00:5c::b", kUnderlayC = "fd00:5c::c", kUnderlayD = "fd00:5c::d";
  const std::string node_b = nodeAt(kUnderlayB).value("id", "");
  const std::string node_c = nodeAt(kUnderlayC).value("id", "");
  const json inst_b = onNode(healthy, node_b);
  const json inst_c = onNode(healthy, node_c);
  ASSERT_TRUE(inst_b.is_object() && inst_c.is_object()) << healthy.dump();
  const std::string b_id = inst_b.value("id", "");
  const std::string c_addr = inst_c.value("address", "");

  phase("host B's instance resolves web.hello.internal and reaches host C's (probes in the guest)");
  Probe resolved;
  for (auto deadline = Clock::now() + 30s; Clock::now() < deadline;) {
    resolved = probe("", b_id, {"resolve", "web.hello.internal"});
    if (field(resolved.line, "addresses").find(c_addr) != std::string::npos) break;
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_EQ(resolved.code, 0) << resolved.line;
  for (const auto& i : healthy) {
    EXPECT_NE(field(resolved.line, "addresses").find(i.value("address", "")), std::string::npos)
        << resolved.line << " lacks " << i.value("address", "");
  }
  const Probe connected = probe("", b_id, {"connect", c_addr, "8443"});
  EXPECT_EQ(connected.code, 0) << connected.line;
  EXPECT_EQ(field(connected.line, "result"), "ok") << connected.line;
  const Probe pinged = probe("", b_id, {"ping", c_addr, "--interval-ms", "100", "--count", "20"});
  EXPECT_EQ(field(pinged.line, "lost"), "0") << pinged.line;

  phase("a second org's instance cannot reach the first org's (connects refused or dropped)");
  const std::string other = "e2e-other";
  ASSERT_EQ(vt({"orgs", "create", other}).code, 0);
  // Its own route hostnames: a hostname belongs to one org.
  std::string other_text = readFile(manifest).value_or("");
  for (const char* h : {"hello.localhost", "hello-pp.localhost"}) {
    const std::string host = h;
    const auto at = other_text.find('"' + host + '"');
    ASSERT_NE(at, std::string::npos) << host;
    other_text.replace(at + 1, host.size(), "other-" + host);
  }
  ASSERT_TRUE(writeFileAtomic(io_->file("vt-other.toml"), other_text));
  VtRun other_deploy = vt({"deploy", "--org", other, "--manifest", io_->file("vt-other.toml"),
                           "--image", ref, "--timeout", "3m"},
                          240s);
  ASSERT_EQ(other_deploy.code, 0) << other_deploy.err;
  const json other_healthy = waitHealthyHello(
      other, [](const json& l) { return !l.empty(); }, 120s);
  ASSERT_EQ(other_healthy.size(), 1U) << other_healthy.dump();
  const std::string other_id = other_healthy[0].value("id", "");
  const std::string other_addr = other_healthy[0].value("address", "");
  // Its own name resolves to its own instance only.
  const Probe other_resolved = probe(other, other_id, {"resolve", "web.hello.internal"});
  EXPECT_EQ(field(other_resolved.line, "addresses"), other_addr) << other_resolved.line;
  int refused = 0, attempts = 0;
  for (const auto& i : healthy) {
    ++attempts;
    const Probe p =
        probe(other, other_id, {"connect", i.value("address", ""), "8443", "--timeout-ms", "1500"});
    EXPECT_NE(field(p.line, "result"), "ok") << p.line;
    refused += p.code == 1 && !p.line.empty() ? 1 : 0;
  }
  ++attempts;  // and the other way round
  const Probe back = probe("", b_id, {"connect", other_addr, "8443", "--timeout-ms", "1500"});
  EXPECT_NE(field(back.line, "result"), "ok") << back.line;
  refused += back.code == 1 && !back.line.empty() ? 1 : 0;
  EXPECT_EQ(refused, attempts);
  std::printf("cross-org connects: %d attempted, %d failed as they must\n", attempts, refused);

  {
    phase(
        "host C's mesh key rotated under a 10 packets/s probe ping from host B's: at most 1 lost");
    const auto meshKey = [&] {
      return vtJson({"nodes", "get", node_c}).value("mesh_key", json::object());
    };
    const std::string since_before = meshKey().value("since", "");
    // The ping runs in a thread of its own, with vt run directly (its own
    // output files): 15 s at 10 packets/s, the rotation in the middle.
    std::thread pinger([&] {
      SpawnOptions so;
      so.env = vtEnv();
      so.stdout_path = io_->file("rotation-ping.out");
      so.stderr_path = io_->file("rotation-ping.err");
      so.timeout = 90s;
      (void)runChecked({vtBinary(), "exec", "--app", "hello", "--instance", b_id, "--", "hello",
                        "probe", "ping", c_addr, "--interval-ms", "100", "--count", "150"},
                       so);
    });
    std::this_thread::sleep_for(2s);  // the session is open and the pings flow
    const auto rotation_started = Clock::now();
    VtRun rotate = vt({"nodes", "rotate-key", node_c});
    EXPECT_EQ(rotate.code, 0) << rotate.err;
    double rotated = -1;
    for (auto deadline = rotation_started + 30s; Clock::now() < deadline;) {
      const json k = meshKey();
      if (k.value("since", "") != since_before && !k.value("rotating", true)) {
        rotated = std::chrono::duration<double>(Clock::now() - rotation_started).count();
        break;
      }
      std::this_thread::sleep_for(200ms);
    }
    pinger.join();
    std::string ping_line;
    const std::string ping_out = readFile(io_->file("rotation-ping.out")).value_or("");
    if (auto at = ping_out.rfind("ping "); at != std::string::npos) {
      ping_line = ping_out.substr(at, ping_out.find('\n', at) - at);
    }
    std::printf("host C's mesh key rotated in %.1fs under ping: %s\n", rotated, ping_line.c_str());
    EXPECT_GE(rotated, 0) << "host C's key did not rotate within 30 s: " << meshKey().dump();
    ASSERT_FALSE(field(ping_line, "lost").empty())
        << ping_out << readFile(io_->file("rotation-ping.err")).value_or("");
    EXPECT_LE(std::atoi(field(ping_line, "lost").c_str()), 1) << ping_line;
  }

  phase("host B stopped: its instance is replaced on host A or C, the ingress stops reaching it");
  const auto stop_started = Clock::now();
  VtRun stop = vt({"dev", "host", "stop", "b", "--state-dir", state_->path()});
  ASSERT_EQ(stop.code, 0) << stop.err;
  const json replaced = waitHealthyHello(
      "",
      [&](const json& l) {
        if (l.size() != static_cast<size_t>(kNodes)) return false;
        for (const auto& i : l) {
          if (i.value("node_id", "") == node_b || i.value("id", "") == b_id) return false;
        }
        return true;
      },
      120s);
  const double replace_seconds = std::chrono::duration<double>(Clock::now() - stop_started).count();
  ASSERT_EQ(replaced.size(), static_cast<size_t>(kNodes)) << replaced.dump();
  ASSERT_TRUE(onNode(replaced, node_b).is_null()) << replaced.dump();
  std::set<std::string> replaced_ids;
  for (const auto& i : replaced) replaced_ids.insert(i.value("id", ""));
  EXPECT_FALSE(replaced_ids.contains(b_id));
  std::printf("host B's instance replaced in %.1fs\n", replace_seconds);
  int b_answers = 0, after_failures = 0, after_ok = 0;
  std::set<std::string> after_seen;
  for (auto deadline = Clock::now() + 60s;
       Clock::now() < deadline && (after_seen.size() < replaced_ids.size() || after_ok < 30);) {
    const std::string id = line(curl("hello.localhost", "::1"), "instance");
    if (id.empty()) {
      ++after_failures;
      continue;
    }
    ++after_ok;
    after_seen.insert(id);
    b_answers += id == b_id ? 1 : 0;
  }
  EXPECT_EQ(b_answers, 0) << "host B's instance answered through the ingress after its replacement";
  EXPECT_EQ(after_seen, replaced_ids);
  std::printf("after the replacement: %d answers (%d from host B's instance), %d failed requests\n",
              after_ok, b_answers, after_failures);

  phase("host D added: reachable from host A within 2 s, and it takes a new placement");
  const auto add_started = Clock::now();  // enrollment is part of `host add`
  VtRun add = vt({"dev", "host", "add", "--state-dir", state_->path()}, 180s);
  ASSERT_EQ(add.code, 0) << add.err;
  const json node_a = nodeAt("fd00:5c::a");
  const json node_d = nodeAt(kUnderlayD);
  ASSERT_TRUE(node_d.is_object()) << "no active node at " << kUnderlayD;
  const auto hostAddress = [](const json& node) {
    const std::string a = vt::dev::nodeHostAddress(node.value("ipv6_prefix", ""));
    return a.substr(0, a.find('/'));
  };
  const std::string a_host = hostAddress(node_a);
  const std::string d_host = hostAddress(node_d);
  ASSERT_FALSE(a_host.empty() || d_host.empty()) << node_a.dump() << node_d.dump();
  // Host D speaks first: host A learnt of D at its enrollment, while a
  // handshake A starts before D's interface is configured is dropped and
  // WireGuard retries it only after 5 s (REKEY_TIMEOUT). Then host A pings D.
  const auto pingFrom = [&](const std::string& netns, const std::string& to) {
    std::vector<std::string> argv;
    if (!netns.empty()) argv = {"nsenter", "--net=/run/netns/" + netns, "--"};
    argv.insert(argv.end(), {"ping", "-6", "-c", "1", "-W", "1", to});
    SpawnOptions so;
    so.stdout_path = io_->file("ping.out");
    so.timeout = 5s;
    return runChecked(argv, so).has_value();
  };
  const std::string netns_d = namespaces[0].substr(0, namespaces[0].rfind('-')) + "-d";
  double d_reachable = -1;
  for (auto deadline = add_started + 30s; Clock::now() < deadline;) {
    if (pingFrom(netns_d, a_host) && pingFrom("", d_host)) {
      d_reachable = std::chrono::duration<double>(Clock::now() - add_started).count();
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  std::printf("host D reachable from host A over the mesh %.2fs after `host add` began\n",
              d_reachable);
  EXPECT_GE(d_reachable, 0) << "host D's node host address " << d_host << " never answered";
  EXPECT_LE(d_reachable, 2.0);
  namespaces.push_back(netns_d);
  EXPECT_TRUE(netnsExists(namespaces.back())) << namespaces.back();
  const json st4 = vtJson({"dev", "status", "--state-dir", state_->path()});
  ASSERT_EQ(st4.value("hosts", json::array()).size(), static_cast<size_t>(kNodes) + 1)
      << st4.dump();
  for (const auto& h : st4["hosts"]) {
    EXPECT_EQ(h.value("agent_health", ""), h.value("host", "") == "b" ? "stopped" : "healthy")
        << h.dump();
  }
  const std::string node_d_id = node_d.value("id", "");
  ASSERT_EQ(vt({"scale", "set", "web=" + std::to_string(kNodes + 1), "--app", "hello"}).code, 0);
  const json with_d = waitHealthyHello(
      "",
      [&](const json& l) {
        return l.size() == static_cast<size_t>(kNodes) + 1 && onNode(l, node_d_id).is_object();
      },
      120s);
  ASSERT_TRUE(onNode(with_d, node_d_id).is_object()) << with_d.dump();

  phase("1% underlay loss (nftables on the bridge): a rolling deploy and the checks still pass");
  const std::string ul = namespaces[0].substr(0, namespaces[0].rfind('-')) + "-ul";
  SpawnOptions nft;
  nft.stdout_path = io_->file("nft.out");
  ASSERT_TRUE(writeFileAtomic(io_->file("loss.nft"),
                              "table bridge plfm_e2e_loss {\n"
                              "  chain forward {\n"
                              "    type filter hook forward priority 0; policy accept;\n"
                              "    numgen random mod 100 < 1 counter drop\n"
                              "  }\n"
                              "}\n"));
  ASSERT_TRUE(runChecked({"ip", "netns", "exec", ul, "nft", "-f", io_->file("loss.nft")}, nft));
  // Clients through the ingress on host A while the deploy runs.
  std::atomic<bool> stop_load{false};
  std::atomic<int> load_ok{0}, load_failed{0};
  std::thread load([&] {
    const std::string out = io_->file("loss-curl.out");
    while (!stop_load) {
      SpawnOptions so;
      so.stdout_path = out;
      so.stderr_path = io_->file("loss-curl.err");
      std::error_code ec;
      std::filesystem::remove(out, ec);
      auto r = runChecked(
          {"curl", "-sS", "-k", "--max-time", "5", "--resolve",
           "hello.localhost:" + port + ":[::1]", "https://hello.localhost:" + port + "/"},
          so);
      const std::string body = r ? readFile(out).value_or("") : "";
      (line(body, "instance").empty() ? load_failed : load_ok)++;
      std::this_thread::sleep_for(50ms);
    }
  });
  const std::string greeting = "Hello across a lossy underlay";
  std::string text = readFile(manifest).value_or("");
  const auto g = text.find("Hello from plfm-vt");
  ASSERT_NE(g, std::string::npos);
  text.replace(g, std::string("Hello from plfm-vt").size(), greeting);
  ASSERT_TRUE(writeFileAtomic(io_->file("vt-lossy.toml"), text));
  const auto deploy_started = Clock::now();
  VtRun lossy = vt({"deploy", "--manifest", io_->file("vt-lossy.toml"), "--image", ref, "--timeout",
                    "4m", "--app", "hello"},
                   300s);
  const double deploy_seconds =
      std::chrono::duration<double>(Clock::now() - deploy_started).count();
  EXPECT_EQ(lossy.code, 0) << lossy.err;
  const std::string answer = waitFor("hello.localhost", "::1", "greeting: " + greeting + "\n", 60s);
  EXPECT_NE(answer.find(greeting), std::string::npos) << answer;
  stop_load = true;
  load.join();
  // A probe ping between two hosts, both directions across the bridge.
  const json lossy_healthy = healthyHello("");
  const json on_c = onNode(lossy_healthy, node_c);
  const json on_d = onNode(lossy_healthy, node_d_id);
  std::string loss_line = "-";
  if (on_c.is_object() && on_d.is_object()) {
    // The tunnel first: if one of WireGuard's two handshake packets is among
    // the 1 % dropped, the handshake is retried after 5 s (REKEY_TIMEOUT),
    // longer than the ping below. What is measured is an established
    // tunnel's loss.
    for (int i = 0; i < 4; ++i) {
      const Probe warm =
          probe("", on_c.value("id", ""),
                {"ping", on_d.value("address", ""), "--interval-ms", "100", "--count", "30"});
      const std::string received = field(warm.line, "received");
      if (!received.empty() && std::atoi(received.c_str()) > 0) break;
    }
    loss_line = probe("", on_c.value("id", ""),
                      {"ping", on_d.value("address", ""), "--interval-ms", "20", "--count", "200"})
                    .line;
    const std::string lost = field(loss_line, "lost");
    EXPECT_FALSE(lost.empty()) << loss_line;
    EXPECT_LT(std::atoi(lost.c_str()), 40) << loss_line;  // ~2% expected; 20% is broken
  }
  SpawnOptions counted;
  counted.stdout_path = io_->file("nft-counter.out");
  (void)runChecked({"ip", "netns", "exec", ul, "nft", "list", "table", "bridge", "plfm_e2e_loss"},
                   counted);
  const std::string counter = readFile(counted.stdout_path).value_or("");
  const auto packets = counter.find("packets ");
  std::printf(
      "under 1%% underlay loss: deploy %.1fs (exit %d), %d requests answered, %d failed; %s; "
      "the bridge dropped %s\n",
      deploy_seconds, lossy.code, load_ok.load(), load_failed.load(), loss_line.c_str(),
      packets == std::string::npos
          ? "?"
          : counter.substr(packets, counter.find(' ', packets + 8) - packets).c_str());
  EXPECT_GT(load_ok.load(), 0);
  EXPECT_LE(load_failed.load(), std::max(2, load_ok.load() / 20));  // at most 5%
  ASSERT_TRUE(runChecked(
      {"ip", "netns", "exec", ul, "nft", "delete", "table", "bridge", "plfm_e2e_loss"}, nft));

  phase("vt dev up starts the stopped host B again (the node count is the saved one, 4)");
  VtRun again_up = vt({"dev", "up", "--state-dir", state_->path()}, 180s);
  EXPECT_EQ(again_up.code, 0) << again_up.err;
  EXPECT_NE(again_up.err.find("node-agent-b     started"), std::string::npos) << again_up.err;
  json back_b;
  for (auto deadline = Clock::now() + 30s; Clock::now() < deadline && !back_b.is_object();) {
    back_b = nodeAt(kUnderlayB);
    if (!back_b.is_object()) std::this_thread::sleep_for(250ms);
  }
  EXPECT_TRUE(back_b.is_object()) << "host B's node is not active again";

  phase("vt dev down: no namespace, process, interface or tap left; a second down finds nothing");
  VtRun down = vt({"dev", "down", "--state-dir", state_->path()}, 240s);
  ASSERT_EQ(down.code, 0) << down.err;
  for (const auto& ns : namespaces) EXPECT_FALSE(netnsExists(ns)) << ns;
  EXPECT_TRUE(vt::dev::processesMentioning(state_->path()).empty());
  EXPECT_TRUE(vt::dev::vtTaps().empty());
  EXPECT_TRUE(vt::dev::socketsUnder(state_->path()).empty());
  VtRun again = vt({"dev", "down", "--state-dir", state_->path()}, 120s);
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.err.find("hosts "), std::string::npos) << again.err;
  std::printf("vt mesh e2e wall time: %.1fs\n", elapsed());
}

}  // namespace
}  // namespace plfm
