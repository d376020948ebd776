// `vt dev up --nodes N`: N hosts on one machine (docs/engineering/vt-dev.md,
// docs/specs/networking/mesh.md "The multi-host harness").
//
// Host A is vt dev's own network namespace (the control plane, PostgreSQL,
// the registry, the ingress and agent A). Hosts B, C, ... are network
// namespaces `plfm-<tag>-b`, ...; the underlay is a bridge `br0` in the
// namespace `plfm-<tag>-ul`, one veth per host (`ul-<tag>` on the host's
// side, `h-a`, `h-b`, ... on the bridge), with the addresses fd00:5c::a,
// fd00:5c::b, ... /64 (nodad), and 198.18.0.10, .11, ... /24 for the
// registry alone: image references name it, and skopeo and docker cannot
// name a registry by an IPv6 literal (198.18.0.0/15 is the benchmarking
// range, RFC 2544, so no real network uses it). <tag> is 8 hex characters of the SHA-256 of
// the state dir's path, so two dev platforms on one machine never share a
// name. Each host's mesh interface is `wg-<tag>-a`, ...: wireguard-go's UAPI
// socket (/var/run/wireguard/NAME.sock) is per name machine-wide.
//
// Every command is an argument vector (`ip`, `sysctl` under nsenter), never
// a shell; their output goes to STATE/logs/hosts.log.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::vt::dev {

inline constexpr int kMaxNodes = 8;
inline constexpr const char* kUnderlayPrefix = "fd00:5c::/64";
inline constexpr const char* kUnderlayPrefix4 = "198.18.0.0/24";

struct Host {
  int index = 0;               // 0: host A
  char letter = 'a';           // 'a', 'b', ...
  std::string netns;           // "" for host A (vt dev's own namespace)
  std::string underlay;        // "fd00:5c::a"
  std::string underlay4;       // "198.18.0.10"
  std::string mesh_interface;  // "wg-<tag>-a"
  std::string component;       // "node-agent" (A), "node-agent-b", ...
};

// The underlay address of host `index` (0: A): fd00:5c::a, ::b, ... ::11.
[[nodiscard]] std::string underlayAddress(int index);
// Its IPv4 address (the registry's, for host A): 198.18.0.10, .11, ...
[[nodiscard]] std::string underlayAddress4(int index);

// A node's host address (its /64 plus ::1, where the ingress on host A
// sources its connections over the mesh) from its ipv6_prefix
// ("fd7a:5c00:0:1::/64"): "fd7a:5c00:0:1::1/128"; "" when that is no /64.
[[nodiscard]] std::string nodeHostAddress(const std::string& node_prefix);

// argv run inside host `h`'s network namespace (nsenter --net, which, unlike
// `ip netns exec`, leaves the mount namespace and /sys, with the cgroup
// hierarchy the agent confines VMMs in, alone); argv itself for host A.
[[nodiscard]] std::vector<std::string> inHost(const Host& h, std::vector<std::string> argv);

class Hosts {
 public:
  Hosts(const std::string& state_dir, int nodes);

  [[nodiscard]] const std::string& tag() const { return tag_; }
  [[nodiscard]] const std::vector<Host>& all() const { return hosts_; }
  [[nodiscard]] std::string underlayNetns() const { return "plfm-" + tag_ + "-ul"; }
  // Each host's end of its underlay veth.
  [[nodiscard]] std::string underlayInterface() const { return "ul-" + tag_; }

  // Creates what is missing (idempotent): the namespaces, the bridge, the
  // veths, the addresses, links up, IPv6 forwarding on in hosts B... Fails
  // when host A's underlay address is on another interface here (another
  // multi-host dev platform in this namespace).
  [[nodiscard]] Result<void> create(const std::string& log) const;
  // Deletes every mesh interface, ends every process left in a host's
  // namespace (wireguard-go, a VMM of a killed agent) and deletes the
  // namespaces and host A's veth: every `plfm-<tag>-*` namespace, whatever
  // the node count was. Returns one line per thing done.
  [[nodiscard]] std::vector<std::string> destroy(const std::string& log) const;
  // `vt dev host stop`: ends every process in host `h`'s namespace with
  // SIGKILL (its agent first, then its VMMs and wireguard-go: a host that
  // lost power) and takes its underlay link down. Its namespace stays, so
  // that `up` can start it again and `down` finds it. Host A cannot stop
  // (it runs the control plane). Returns one line per thing done.
  [[nodiscard]] Result<std::vector<std::string>> stop(const Host& h, pid_t agent,
                                                      const std::string& log) const;
  // What destroy() would still find: namespaces, interfaces, wireguard-go
  // sockets, processes.
  [[nodiscard]] std::vector<std::string> leftovers() const;
  // The namespaces `plfm-<tag>-*` that exist now.
  [[nodiscard]] std::vector<std::string> namespaces() const;

 private:
  std::string tag_;
  std::vector<Host> hosts_;
};

}  // namespace plfm::vt::dev
