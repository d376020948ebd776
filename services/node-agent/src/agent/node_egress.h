// The node's egress NAT as the agent runs it (docs/specs/networking/mesh.md,
// "Egress"): the interfaces resolved once at start, the cluster prefix and
// the guest IPv4 subnet (10.42.N.0/24 from the node number, unless the
// operator set one) followed from the plan's mesh section, and the tables
// (netdev/egress.h) rewritten when they change. Thread-safe.
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "netdev/egress.h"
#include "netdev/mesh_plan.h"

namespace plfm::agent {

struct AgentOptions;

class NodeEgress {
 public:
  // Resolves the egress interfaces (--egress-interface, else each family's
  // default route's) and logs a warning naming the sysctl when egress is on
  // and the kernel does not forward.
  explicit NodeEgress(const AgentOptions& options);

  // Follows the plan's mesh section (nullptr: the plan has none; an
  // operator-set subnet still applies). Failures are logged and retried on
  // the next plan.
  void follow(const netdev::MeshPlan* mesh);
  // The node's guest IPv4 subnet, once known (from the last run's until the
  // first plan).
  [[nodiscard]] std::optional<netdev::Ipv4Prefix> guestSubnet4() const;
  // Removes both tables (the agent stops its instances on exit).
  void remove();

 private:
  [[nodiscard]] std::string subnetFile() const;  // STATE/egress/guest_subnet4
  std::string work_dir_;
  mutable std::mutex mu_;
  netdev::NftEgress nft_;        // guarded by mu_
  netdev::EgressPolicy policy_;  // guarded by mu_
  std::string subnet_flag_;
};

// The sysctls egress needs that are off: "net.ipv4.ip_forward" and/or
// "net.ipv6.conf.all.forwarding" (read from /proc/sys).
[[nodiscard]] std::vector<std::string> forwardingOff(bool ipv4, bool ipv6);

}  // namespace plfm::agent
