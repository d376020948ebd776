// The node's end of the WireGuard mesh (docs/specs/networking/mesh.md, "The
// agent's mesh"): one interface (plfm-wg0 by default) carrying this node's
// host address, one WireGuard peer and one route per other node.
//
//   Mesh mesh({.interface = "plfm-wg0", .state_dir = STATE});
//   PLFM_TRY(mesh.apply(plan));          // bring-up, wg syncconf, address, routes
//   auto drift = mesh.check(plan);       // desired vs `wg show dump` and routes
//
// Both backends (the kernel module, or wireguard-go where the kernel has
// none) are configured the same way, with `wg` and `ip` run by execve with an
// argument vector. The private key (STATE/wireguard.key) only ever sits in
// the 0600 file `wg syncconf` reads (STATE/mesh/NAME.conf); no command line,
// log line or error carries it. Pure parts (the config file, the route list,
// the drift) are separate functions, golden- and unit-tested.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "netdev/mesh_plan.h"
#include "netdev/wg_dump.h"
#include "plfm/core/result.h"

namespace plfm::netdev {

inline constexpr int kMeshMtu = 1420;
inline constexpr std::string_view kDefaultMeshInterface = "plfm-wg0";
inline constexpr uint16_t kDefaultMeshPort = 51820;

// 1 to 15 of [a-z0-9-] (a Linux interface name that is also a safe file name).
[[nodiscard]] bool validMeshInterfaceName(std::string_view name);

// The file `wg syncconf` reads (wg(8), CONFIGURATION FILE FORMAT): the
// interface's private key and port, one [Peer] per peer (as peersSwitched()
// makes them: a rotating peer's next key, with a persistent keepalive). Only typed values
// reach it, so no field can add a line or a key. Holds the private key: the
// caller writes it 0600 and wipes the string.
[[nodiscard]] std::string renderWgConfig(const MeshPlan& plan, const WgKey& private_key);

// One line of `ip -6 route show dev NAME`.
struct MeshRoute {
  Ipv6Prefix dst;       // a bare address is a /128
  int mtu = 0;          // 0: none set
  bool kernel = false;  // "proto kernel": the interface's own, never touched
};
// Lines it cannot read (another route type) are skipped.
[[nodiscard]] std::vector<MeshRoute> parseRouteList(std::string_view text);

// The peers (by node id) whose prefixes are routed via an interface;
// nullopt: all of them. While a key rotation runs, a peer's route is on one
// of the node's two interfaces only (mesh.md, "Contract for key rotation").
using RoutedPeers = std::optional<std::set<std::string>>;

// What differs between the plan and the interface (one short sentence each,
// naming keys and prefixes, never the private key); empty: in sync.
// `own_key`: the public key that belongs to the interface's key file. Peers
// are compared as peersSwitched() configures them.
[[nodiscard]] std::vector<std::string> meshDrift(const MeshPlan& plan, const WgKey& own_key,
                                                 const WgDump& dump,
                                                 const std::vector<MeshRoute>& routes,
                                                 const RoutedPeers& routed = std::nullopt);

// The link itself, from `ip -o link show dev NAME` (its flags and MTU) and
// `ip -6 -o addr show dev NAME` (its addresses).
struct MeshLink {
  bool up = false;
  int mtu = 0;
  std::vector<in6_addr> addresses;
};
[[nodiscard]] MeshLink parseMeshLink(std::string_view link_text, std::string_view addr_text);
// What differs between the plan and the link (down, MTU, no host address).
[[nodiscard]] std::vector<std::string> linkDrift(const MeshPlan& plan, const MeshLink& link);

// The public key of a private one (Curve25519 base point multiplication).
[[nodiscard]] WgKey publicKeyOf(const WgKey& private_key);
// A fresh private key (libsodium's randombytes_buf, clamped as wg genkey
// does). The caller writes it 0600 and wipes it.
[[nodiscard]] WgKey generatePrivateKey();

// Host-name endpoints resolved to an address (IPv6 first), so that one name
// that does not resolve cannot fail `wg syncconf` for every peer (wg would
// retry it for seconds and then refuse the whole file) and the reconcile
// compares addresses with `wg show dump`. A peer whose name does not
// resolve is left out, with an error naming it.
using EndpointResolver = std::function<Result<WgEndpoint>(const WgEndpoint&)>;
[[nodiscard]] Result<WgEndpoint> resolveEndpoint(const WgEndpoint& endpoint);  // getaddrinfo
struct ResolvedPlan {
  MeshPlan plan;
  std::vector<Error> skipped;
};
[[nodiscard]] ResolvedPlan resolveEndpoints(const MeshPlan& plan,
                                            const EndpointResolver& resolve = resolveEndpoint);

// Runs argv (execve, PATH searched, no shell) and returns its stdout; fails
// unless it exits 0, with stderr's tail in the error. Tests pass a fake.
using CommandRunner = std::function<Result<std::string>(const std::vector<std::string>& argv)>;
[[nodiscard]] CommandRunner realCommandRunner(
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

struct MeshOptions {
  std::string interface = std::string(kDefaultMeshInterface);
  std::string state_dir;  // reads STATE/wireguard.key, writes STATE/mesh/
  // The interface's private key file; empty: STATE/wireguard.key. (A
  // rotation's new interface reads STATE/mesh/next.key.)
  std::string key_file;
  // Whether apply() saves the plan as STATE/mesh/plan.json (the active
  // interface's does; the other one of a rotation does not).
  bool save_plan = true;
  // Whether a link exists; empty: if_nametoindex (tests pass a fake).
  std::function<bool(const std::string&)> link_exists;
  std::string wg = "wg";
  std::string wireguard_go = "wireguard-go";
  std::string ip = "ip";
  std::chrono::milliseconds link_wait{5000};  // for wireguard-go's TUN to appear
};

// Not thread-safe: one caller at a time (the agent's mesh thread).
class Mesh {
 public:
  explicit Mesh(MeshOptions options, CommandRunner run = realCommandRunner());

  // Makes the interface match `plan`: brings it up when it does not exist
  // (`ip link add NAME type wireguard`, else `wireguard-go NAME`), writes
  // STATE/mesh/NAME.conf and runs `wg syncconf`, sets the host address, the
  // MTU and the link up, adds (or fixes) one route per peer prefix and
  // deletes every other route via NAME; then saves the plan as
  // STATE/mesh/plan.json.
  [[nodiscard]] Result<void> apply(const MeshPlan& plan);
  // The differences between `plan` and the interface (meshDrift); a missing
  // interface is one.
  [[nodiscard]] Result<std::vector<std::string>> check(const MeshPlan& plan);
  // check(), then apply() when anything differs (or cannot be read); returns
  // the differences it repaired (empty: nothing to do).
  [[nodiscard]] Result<std::vector<std::string>> reconcile(const MeshPlan& plan);
  [[nodiscard]] Result<WgDump> dump();
  [[nodiscard]] Result<std::vector<MeshRoute>> routes();
  [[nodiscard]] bool exists() const;
  // Deletes the interface (wireguard-go exits with its TUN); fine when absent.
  [[nodiscard]] Result<void> remove();

  // Routes only these peers' prefixes via the interface from now on (the
  // others' are deleted from it by the next apply); nullopt: all.
  void setRouted(RoutedPeers routed) { routed_ = std::move(routed); }
  [[nodiscard]] const RoutedPeers& routed() const { return routed_; }
  // `ip -6 route replace PREFIX dev NAME mtu 1420`: moves a route from the
  // other interface in one step.
  [[nodiscard]] Result<void> routeVia(const Ipv6Prefix& prefix);

  [[nodiscard]] const MeshOptions& options() const { return options_; }
  [[nodiscard]] std::string keyPath() const;
  [[nodiscard]] std::string planPath() const;    // STATE/mesh/plan.json
  [[nodiscard]] std::string configPath() const;  // STATE/mesh/NAME.conf

 private:
  Result<void> bringUp();
  Result<WgKey> privateKey() const;
  Result<void> syncRoutes(const MeshPlan& plan);
  std::string meshDir() const;

  MeshOptions options_;
  CommandRunner run_;
  RoutedPeers routed_;
};

}  // namespace plfm::netdev
