// A multi-host cluster on one machine (docs/specs/networking/mesh.md, "The
// multi-host harness"): `vt dev up --nodes 3` runs hosts B and C in network
// namespaces joined by a bridge underlay, one agent each, and host A (this
// test's private network namespace) runs the control plane, the registry, the
// ingress and agent A. examples/hello with 3 instances lands on the 3 nodes;
// each instance answers on its own host; `vt exec` and `vt logs` reach the
// ones on hosts B and C through the control plane's relay; curl through the
// ingress on host A
// reaches all three over the mesh; `vt dev down` leaves no namespace, process,
// interface or tap, and a second `down` finds nothing.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

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
};

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
    EXPECT_NE(logs.out.find("listening https="), std::string::npos) << logs.out;
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
