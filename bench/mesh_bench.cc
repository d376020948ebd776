// bench/mesh_bench: the WireGuard mesh (docs/specs/networking/mesh.md) with
// the agent's netdev::Mesh and wireguard-go, in network namespaces (root).
//
//   build/bench/mesh_bench [--seconds 5] [--rounds 5] [--rotations 3]
//
// Two "hosts", each a namespace, joined by a veth pair (the underlay), each
// with its own mesh interface. Prints, no assertions:
//   (a) iperf3 TCP throughput from host A to host B through the mesh and over
//       the bare underlay, alternately in the same run (the peer figure);
//   (b) the time from applying the plan that adds host A as a peer on host B
//       to the first handshake (`wg show dump` polled every 10 ms, a ping
//       from B sent right after the apply: WireGuard shakes hands on the
//       first packet, the plan sets no keepalive);
//   (c) at 200 peers (host B and 199 made-up ones) on host A through `wg
//       syncconf`: the apply from 1 to 200 peers, a reconcile in sync, the
//       apply of one peer fewer and of one more; medians of --rounds, and
//       whether wireguard-go kept its pid (no restart);
//   (d) key rotations of host A (agent::MeshMember on both hosts, a fake
//       control plane turning the reports into plans): the time from the
//       request to the commit and the packets lost by a 10 packets/s ping each
//       way, per rotation (--rotations, default 3; each one alternates slots).
// Namespaces and wireguard-go processes are removed at the end, also after
// a failure.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/mesh_member.h"
#include "netdev/mesh.h"
#include "netdev/mesh_rotation.h"
#include "netdev/wg_dump.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "support/mesh_netns.h"
#include "support/mesh_rotation_cp.h"
#include "support/mesh_sections.h"

namespace plfm::netdev {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::inNs;
using testing::sh;

double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Host {
  std::string ns;
  std::string wg;
  std::string underlay;
  uint32_t number = 0;
  plfm::testing::TempDir state{"mesh-bench"};
  WgKey public_key;

  [[nodiscard]] std::string meshAddress() const {
    return "fd7a:5c00:0:" + std::to_string(number) + "::1";
  }
  [[nodiscard]] json peer() const {
    return testing::meshPeer(number, public_key.base64(), "[" + underlay + "]:51820");
  }
  [[nodiscard]] Mesh mesh() const {
    MeshOptions o;
    o.interface = wg;
    o.state_dir = state.path();
    return Mesh(o);
  }
  Result<void> apply(const MeshPlan& plan) const {
    return inNs(ns, [&] { return mesh().apply(plan); });
  }
  Result<std::vector<std::string>> reconcile(const MeshPlan& plan) const {
    return inNs(ns, [&] { return mesh().reconcile(plan); });
  }
  Result<WgDump> dump() const {
    return inNs(ns, [&] { return mesh().dump(); });
  }
};

Result<MeshPlan> planFor(const Host& self, const std::vector<json>& peers, int64_t version) {
  PLFM_ASSIGN_OR_RETURN(auto p, parseMeshPlan(testing::meshSection(version, self.number, peers)));
  return p.plan;
}

class Bench {
 public:
  Bench() { testing::nameTwoHosts(a_, b_, "mb", "fd00:5d::"); }
  ~Bench() {
    for (const auto& ns : created_) (void)sh({"ip", "netns", "del", ns});
    for (const Host* h : {&a_, &b_}) {
      for (const std::string& name : {h->wg, defaultMeshInterface2(h->wg)}) {
        for (pid_t pid : testing::wireguardGo(name)) (void)stopProcess(pid, SIGTERM, 2s);
        ::unlink(("/var/run/wireguard/" + name + ".sock").c_str());
      }
    }
  }
  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;

  Result<void> setUp() {
    for (Host* h : {&a_, &b_}) {
      PLFM_TRY(sh({"ip", "netns", "add", h->ns}));
      created_.push_back(h->ns);
      PLFM_TRY(sh({"ip", "-n", h->ns, "link", "set", "lo", "up"}));
      PLFM_ASSIGN_OR_RETURN(h->public_key, testing::randomKeyFile(h->state.path()));
    }
    PLFM_TRY(sh({"ip", "-n", a_.ns, "link", "add", "ul", "type", "veth", "peer", "name", "ul",
                 "netns", b_.ns}));
    for (Host* h : {&a_, &b_}) {
      PLFM_TRY(
          sh({"ip", "-n", h->ns, "-6", "addr", "add", h->underlay + "/64", "dev", "ul", "nodad"}));
      PLFM_TRY(sh({"ip", "-n", h->ns, "link", "set", "ul", "up"}));
    }
    // A new veth carries after the kernel's link watch runs (about 1 s).
    if (!within(5s, [&] { return pings(a_, b_.underlay); })) {
      return Error(errc::kUnavailable, "the underlay does not carry");
    }
    return ok();
  }

  // (b): host A knows B; B's plan gains A; the time to the first handshake.
  Result<void> handshake() {
    PLFM_ASSIGN_OR_RETURN(auto pa, planFor(a_, {b_.peer()}, 1));
    PLFM_ASSIGN_OR_RETURN(auto pb, planFor(b_, {a_.peer()}, 1));
    PLFM_TRY(a_.apply(pa));
    const auto t0 = Clock::now();
    PLFM_TRY(b_.apply(pb));
    const double applied = msSince(t0);
    auto ping = spawn({"ip", "netns", "exec", b_.ns, "ping", "-6", "-c", "5", "-i", "0.2", "-W",
                       "1", a_.meshAddress()});
    PLFM_TRY(ping);
    auto shaken = within(10s, [&] {
      auto d = b_.dump();
      return d && !d->peers.empty() && d->peers[0].latest_handshake > 0;
    });
    (void)ping->waitOrKill(5s, true);
    if (!shaken) return Error(errc::kUnavailable, "no handshake within 10 s");
    std::printf(
        "(b) peer added to host B's plan -> first handshake: %.0f ms (of which the apply, "
        "the bring-up of B's interface included, %.0f ms)\n",
        *shaken + applied, applied);
    return ok();
  }

  // (a): iperf3 A -> B, bare underlay and mesh alternately.
  Result<void> throughput(int seconds, int rounds) {
    std::vector<double> bare;
    std::vector<double> mesh;
    for (int i = 0; i < rounds; ++i) {
      PLFM_ASSIGN_OR_RETURN(double u, iperf(b_.underlay, seconds));
      PLFM_ASSIGN_OR_RETURN(double m, iperf(b_.meshAddress(), seconds));
      bare.push_back(u);
      mesh.push_back(m);
      std::printf("(a) round %d: bare underlay %.0f Mbit/s, mesh %.0f Mbit/s\n", i + 1, u, m);
    }
    std::printf(
        "(a) iperf3 TCP, %d s x %d rounds, medians: bare underlay %.0f Mbit/s, mesh "
        "(wireguard-go) %.0f Mbit/s (%.0f%% of the underlay)\n",
        seconds, rounds, median(bare), median(mesh),
        100.0 * median(mesh) / std::max(1.0, median(bare)));
    return ok();
  }

  // (c): 200 peers on host A through syncconf.
  Result<void> twoHundredPeers(int rounds) {
    std::vector<json> peers = {b_.peer()};
    for (uint32_t n = 10; peers.size() < 200; ++n) {
      Host fake;
      fake.number = n;
      std::array<uint8_t, 32> pk{};
      randombytes_buf(pk.data(), pk.size());
      fake.public_key = WgKey::fromBytes(pk);
      char underlay[64];
      std::snprintf(underlay, sizeof underlay, "fd00:5d::1:%x", n);
      fake.underlay = underlay;
      peers.push_back(fake.peer());
    }
    std::vector<json> fewer = peers;
    fewer.pop_back();
    PLFM_ASSIGN_OR_RETURN(auto one, planFor(a_, {b_.peer()}, 10));
    PLFM_ASSIGN_OR_RETURN(auto all, planFor(a_, peers, 11));
    PLFM_ASSIGN_OR_RETURN(auto less, planFor(a_, fewer, 12));
    const auto pids = testing::wireguardGo(a_.wg);
    std::vector<double> first;
    std::vector<double> steady;
    std::vector<double> removed;
    std::vector<double> added;
    for (int i = 0; i < rounds; ++i) {
      PLFM_TRY(a_.apply(one));
      auto t0 = Clock::now();
      PLFM_TRY(a_.apply(all));
      first.push_back(msSince(t0));
      t0 = Clock::now();
      PLFM_ASSIGN_OR_RETURN(auto drift, a_.reconcile(all));
      steady.push_back(msSince(t0));
      if (!drift.empty()) return Error(errc::kInternal, "drift at 200 peers: " + drift[0]);
      t0 = Clock::now();
      PLFM_TRY(a_.apply(less));
      removed.push_back(msSince(t0));
      t0 = Clock::now();
      PLFM_TRY(a_.apply(all));
      added.push_back(msSince(t0));
    }
    PLFM_ASSIGN_OR_RETURN(auto d, a_.dump());
    std::printf(
        "(c) 200 peers (%zu in wg show), medians of %d: apply 1 -> 200 peers %.0f ms, "
        "reconcile in sync %.0f ms, one peer fewer %.0f ms, one peer more %.0f ms; "
        "wireguard-go restarted: %s\n",
        d.peers.size(), rounds, median(first), median(steady), median(removed), median(added),
        testing::wireguardGo(a_.wg) == pids ? "no" : "yes");
    // The mesh still carries with 200 peers configured.
    std::printf("(c) host A -> host B over the mesh at 200 peers: %s\n",
                pings(a_, b_.meshAddress()) ? "ping ok" : "PING FAILED");
    return ok();
  }

  // (d): key rotations of host A under a 10 packets/s ping each way.
  Result<void> rotations(int count) {
    metrics::Registry metrics;
    testing::FakeRotationControlPlane<Host> cp(a_, b_);
    cp.start(metrics, 1s);
    if (!within(5s, [&] { return pings(a_, b_.meshAddress()) && pings(b_, a_.meshAddress()); })) {
      return Error(errc::kUnavailable, "the members' mesh does not carry");
    }
    std::vector<double> commits;
    for (int i = 0; i < count; ++i) {
      plfm::testing::TempDir out("mesh-bench-ping");
      const auto ping = [&](const Host& from, const Host& to, const std::string& file) {
        SpawnOptions so;
        so.stdout_path = file;
        return spawn({"ip", "netns", "exec", from.ns, "ping", "-6", "-i", "0.1", "-c", "40", "-W",
                      "1", to.meshAddress()},
                     so);
      };
      PLFM_ASSIGN_OR_RETURN(Process to_a, ping(b_, a_, out.file("to_a")));
      PLFM_ASSIGN_OR_RETURN(Process to_b, ping(a_, b_, out.file("to_b")));
      std::this_thread::sleep_for(1s);
      const WgKey old_key = cp.key();
      cp.requestRotation();
      auto committed = within(10s, [&] { return !(cp.key() == old_key); });
      if (!committed) return Error(errc::kDeadlineExceeded, "the rotation did not commit");
      commits.push_back(*committed);
      if (!within(5s, [&] { return !cp.memberA().rotation(); })) {
        return Error(errc::kDeadlineExceeded, "the old interface was not retired");
      }
      (void)to_a.waitOrKill(10s, true);
      (void)to_b.waitOrKill(10s, true);
      const auto [sent_a, got_a] = testing::pingCounts(readFile(out.file("to_a")).value_or(""));
      const auto [sent_b, got_b] = testing::pingCounts(readFile(out.file("to_b")).value_or(""));
      std::printf(
          "(d) rotation %d (to %s): committed %.0f ms after the request; 10 packets/s ping lost "
          "%d of %d to the rotating host, %d of %d from it\n",
          i + 1, cp.memberA().activeInterface().c_str(), *committed, sent_a - got_a, sent_a,
          sent_b - got_b, sent_b);
    }
    std::printf("(d) %d rotations: request -> commit median %.0f ms\n", count, median(commits));
    cp.stop();
    return ok();
  }

 private:
  static std::optional<double> within(std::chrono::milliseconds limit,
                                      const std::function<bool()>& ok) {
    const auto t0 = Clock::now();
    while (true) {
      if (ok()) return msSince(t0);
      if (Clock::now() - t0 > limit) return std::nullopt;
      std::this_thread::sleep_for(10ms);
    }
  }

  static bool pings(const Host& from, const std::string& to) {
    return static_cast<bool>(
        sh({"ip", "netns", "exec", from.ns, "ping", "-6", "-c", "1", "-W", "0.5", to}));
  }

  // Mbit/s received by an iperf3 server on host B at `address`.
  Result<double> iperf(const std::string& address, int seconds) {
    auto server = spawn({"ip", "netns", "exec", b_.ns, "iperf3", "-s", "-1", "-B", address});
    PLFM_TRY(server);
    // Until the server listens: iperf3 -J may exit 0 with only an "error".
    Result<std::string> out = Error(errc::kUnavailable, "iperf3 did not run");
    json bps;
    for (int attempt = 0; attempt < 20; ++attempt) {
      out = sh({"ip", "netns", "exec", a_.ns, "iperf3", "-J", "-c", address, "-t",
                std::to_string(seconds)});
      if (out) {
        const json j = json::parse(*out, nullptr, false);
        bps = j.is_object()
                  ? j.value(json::json_pointer("/end/sum_received/bits_per_second"), json())
                  : json();
        if (bps.is_number()) break;
      }
      std::this_thread::sleep_for(100ms);
    }
    (void)server->waitOrKill(5s, true);
    PLFM_TRY(out);
    if (!bps.is_number()) return Error(errc::kInternal, "iperf3 printed no throughput");
    return bps.get<double>() / 1e6;
  }

  Host a_;
  Host b_;
  std::vector<std::string> created_;
};

}  // namespace
}  // namespace plfm::netdev

int main(int argc, char** argv) {
  int seconds = 5;
  int rounds = 5;
  int rotations = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--rotations") == 0) rotations = std::max(0, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::max(1, std::atoi(argv[i + 1]));
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "mesh_bench: needs root (network namespaces)\n");
    return 2;
  }
  if (!plfm::netdev::testing::haveTools({"wg", "wireguard-go", "ip", "ping", "iperf3"})) {
    std::fprintf(stderr, "mesh_bench: needs wg, wireguard-go, ip, ping and iperf3\n");
    return 2;
  }
  if (sodium_init() < 0) return 2;
  plfm::netdev::Bench bench;
  plfm::Result<void> r = bench.setUp();
  if (r) r = bench.handshake();
  if (r) r = bench.throughput(seconds, 3);
  if (r) r = bench.twoHundredPeers(rounds);
  if (r && rotations > 0) r = bench.rotations(rotations);
  if (!r) {
    std::fprintf(stderr, "mesh_bench: %s\n", r.error().toString().c_str());
    return 1;
  }
  return 0;
}
