#include "agent/node_egress.h"

#include <sys/socket.h>

#include <fstream>

#include "agent/agent.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"

namespace plfm::agent {
namespace {

bool sysctlOn(const char* path) {
  std::ifstream in(path);
  int v = 0;
  return (in >> v) && v != 0;
}

}  // namespace

std::vector<std::string> forwardingOff(bool ipv4, bool ipv6) {
  std::vector<std::string> off;
  if (ipv4 && !sysctlOn("/proc/sys/net/ipv4/ip_forward")) off.emplace_back("net.ipv4.ip_forward");
  if (ipv6 && !sysctlOn("/proc/sys/net/ipv6/conf/all/forwarding")) {
    off.emplace_back("net.ipv6.conf.all.forwarding");
  }
  return off;
}

NodeEgress::NodeEgress(const AgentOptions& options)
    : work_dir_(options.state_dir + "/egress"),
      nft_(work_dir_, options.nft_binary),
      subnet_flag_(options.guest_ipv4_subnet) {
  policy_.egress6 = options.egress6;
  policy_.interface4 = options.egress_interface.empty() ? netdev::defaultRouteInterface(AF_INET)
                                                        : options.egress_interface;
  policy_.interface6 = options.egress_interface.empty() ? netdev::defaultRouteInterface(AF_INET6)
                                                        : options.egress_interface;
  log::info("guest egress",
            {{"egress6", std::string(netdev::egress6ModeName(policy_.egress6))},
             {"interface4", policy_.interface4},
             {"interface6", policy_.interface6},
             {"guest_ipv4_subnet", subnet_flag_.empty() ? "default" : subnet_flag_}});
  // The last subnet, so adopted guests keep their IPv4 rules before the
  // first plan (the filter is rebuilt at start).
  if (auto last = readFile(subnetFile()); last && !last->empty() && subnet_flag_ != "off") {
    if (auto p = netdev::parseIpv4Prefix(*last)) policy_.guest_subnet4 = *p;
  }
  for (const auto& sysctl :
       forwardingOff(subnet_flag_ != "off", policy_.egress6 != netdev::Egress6Mode::kOff)) {
    log::warn("forwarding is off: guests cannot reach the outside (set the sysctl to 1)",
              {{"sysctl", sysctl}});
  }
}

void NodeEgress::follow(const netdev::MeshPlan* mesh) {
  std::lock_guard lock(mu_);
  netdev::EgressPolicy next = policy_;
  next.cluster_prefix.reset();
  if (mesh != nullptr) next.cluster_prefix = mesh->cluster_prefix;
  // The default subnet needs the node number; an operator-set one does not.
  if (subnet_flag_ == "off") {
    next.guest_subnet4.reset();
  } else if (mesh != nullptr || !subnet_flag_.empty()) {
    auto subnet = netdev::guestSubnet4(subnet_flag_, mesh != nullptr ? mesh->self.node_number : 0);
    if (subnet) next.guest_subnet4 = *subnet;
  }
  if (auto r = nft_.apply(next); !r) {
    log::warn("applying the egress NAT failed; the next plan retries",
              {{"error", r.error().toString()}});
    return;
  }
  if (next.guest_subnet4 != policy_.guest_subnet4) {
    const std::string text = next.guest_subnet4 ? next.guest_subnet4->str() : "";
    if (auto r = writeFileAtomic(subnetFile(), text, 0600); !r) {
      log::warn("saving the guest IPv4 subnet failed", {{"error", r.error().toString()}});
    }
  }
  policy_ = std::move(next);
}

std::string NodeEgress::subnetFile() const { return work_dir_ + "/guest_subnet4"; }

std::optional<netdev::Ipv4Prefix> NodeEgress::guestSubnet4() const {
  std::lock_guard lock(mu_);
  return policy_.guest_subnet4;
}

void NodeEgress::remove() {
  std::lock_guard lock(mu_);
  if (auto r = nft_.remove(); !r) {
    log::warn("removing the egress NAT failed", {{"error", r.error().toString()}});
  }
}

}  // namespace plfm::agent
