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
#include "netdev/mesh.h"
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

// Makes the host address local whatever the mesh interface does: a node
// without peers has no mesh interface, yet its guests are told to ask this
// address (`ip -6 addr replace ADDR/128 dev lo`; the mesh's own
// `addr replace` on its interface still works, the address may be on both).
[[nodiscard]] Result<void> makeHostAddressLocal(const netdev::CommandRunner& run,
                                                const std::string& ip, const in6_addr& address);
// Undoes makeHostAddressLocal (`ip -6 addr del ADDR/128 dev lo`), for an
// agent that leaves nothing behind (--stop-instances-on-exit); an address
// that is not there is not an error.
void releaseHostAddress(const netdev::CommandRunner& run, const std::string& ip,
                        const in6_addr& address);

// The responder of a mesh node: on the plan's host address (made local
// first, by makeHostAddressLocal), names by the org tag of the cluster
// prefix, upstreams from --dns-upstream (`upstreams`, validated by the flag)
// or else the host's /etc/resolv.conf. Fails, and nothing may advertise the
// address, when the address cannot be made local.
[[nodiscard]] Result<std::unique_ptr<DnsResponder>> startMeshDnsResponder(
    const netdev::MeshPlan& plan, const netdev::MeshOptions& mesh,
    const std::vector<std::string>& upstreams,
    const netdev::CommandRunner& run = netdev::realCommandRunner());

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
