// The node's DNS responder for its guests (docs/specs/networking/mesh.md,
// "Internal names"): UDP and TCP port 53 on the node's host address, names
// under .internal answered from the ServiceTable for the org of the query's
// source address, every other name forwarded to the host's resolvers with a
// fresh random id and the answer checked against the question before it is
// relayed. One thread for UDP (forwards are pending sockets in the same
// poll loop, so a slow upstream blocks nobody) and one for TCP.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "netdev/dns_message.h"
#include "netdev/mesh_plan.h"
#include "plfm/core/result.h"
#include "plfm/core/unique_fd.h"

namespace plfm::agent {

// An upstream resolver's address (port 53 unless given).
struct DnsUpstream {
  sockaddr_storage addr{};
  socklen_t len = 0;
  [[nodiscard]] std::string str() const;
};

// "2001:db8::53", "192.0.2.53", "[2001:db8::53]:5353" or "192.0.2.53:5353".
[[nodiscard]] Result<DnsUpstream> parseDnsUpstream(std::string_view text);
// The `nameserver` lines of /etc/resolv.conf (bad lines are skipped).
[[nodiscard]] std::vector<DnsUpstream> parseResolvConf(std::string_view text);

struct DnsResponderConfig {
  in6_addr listen{};        // the node's host address
  std::uint16_t port = 53;  // 0: any (tests)
  std::vector<DnsUpstream> upstreams;
  // The org tag of a source address (MeshFilter::tagOf); 0: no org.
  std::function<std::uint32_t(const in6_addr&)> org_tag_of;
  std::chrono::milliseconds upstream_timeout{2000};
};

class DnsResponder;

// The responder of a mesh node: on the plan's host address, names by the
// org tag of the cluster prefix, upstreams from --dns-upstream (`upstreams`,
// validated by the flag) or else the host's /etc/resolv.conf.
[[nodiscard]] Result<std::unique_ptr<DnsResponder>> startMeshDnsResponder(
    const netdev::MeshPlan& plan, std::string_view mesh_interface,
    const std::vector<std::string>& upstreams);

class DnsResponder {
 public:
  // Binds both sockets (IPV6_FREEBIND: the address may come up later) and
  // starts serving.
  [[nodiscard]] static Result<std::unique_ptr<DnsResponder>> start(DnsResponderConfig config);
  ~DnsResponder();
  DnsResponder(const DnsResponder&) = delete;
  DnsResponder& operator=(const DnsResponder&) = delete;

  // Replaces the names (from the services feed).
  void setTable(netdev::dns::ServiceTable table);
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  explicit DnsResponder(DnsResponderConfig config) : config_(std::move(config)) {}
  void serveUdp();
  void serveTcp();
  // The answer to one query from `source` (empty: send nothing), or a
  // forward to start when `forward` is set.
  [[nodiscard]] std::vector<std::uint8_t> answerLocal(std::span<const std::uint8_t> wire,
                                                      const in6_addr& source, std::size_t limit,
                                                      std::optional<netdev::dns::Query>& forward);
  [[nodiscard]] std::vector<std::uint8_t> forwardBlocking(const netdev::dns::Query& q);

  DnsResponderConfig config_;
  UniqueFd udp_;
  UniqueFd tcp_;
  UniqueFd stop_;  // eventfd
  std::uint16_t port_ = 0;
  std::mutex mu_;
  std::shared_ptr<const netdev::dns::ServiceTable> table_ =
      std::make_shared<const netdev::dns::ServiceTable>();
  std::thread udp_thread_;
  std::thread tcp_thread_;
};

}  // namespace plfm::agent
