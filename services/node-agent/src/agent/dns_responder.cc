#include "agent/dns_responder.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <list>

#include "netdev/firewall.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"

namespace plfm::agent {

namespace dns = netdev::dns;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kMaxPending = 256;
constexpr int kTcpReadTimeoutMs = 2000;

std::uint16_t randomId() {
  std::uint16_t id = 0;
  if (::getrandom(&id, sizeof id, 0) != sizeof id) {
    id = static_cast<std::uint16_t>(SteadyClock::now().time_since_epoch().count());
  }
  return id;
}

Result<UniqueFd> bound(int type, const in6_addr& addr, std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET6, type | SOCK_CLOEXEC, 0));
  if (!fd) return Error(errc::kIo, "socket failed").with("errno", std::strerror(errno));
  const int one = 1;
  (void)::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  (void)::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one);
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = addr;
  sa.sin6_port = htons(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET6, &addr, text, sizeof text);
    return Error(errc::kIo, "binding the DNS responder failed")
        .with("address", text)
        .with("port", std::to_string(port))
        .with("errno", std::strerror(errno));
  }
  return fd;
}

// A connected UDP socket to `up` (a fresh ephemeral port per query).
UniqueFd connectedTo(const DnsUpstream& up) {
  UniqueFd fd(::socket(up.addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd && ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&up.addr), up.len) != 0) {
    fd.reset();
  }
  return fd;
}

bool readFull(int fd, std::uint8_t* buf, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kTcpReadTimeoutMs) <= 0) return false;
    const ssize_t r = ::read(fd, buf + got, n - got);
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

void writeTcp(int fd, const std::vector<std::uint8_t>& msg) {
  std::vector<std::uint8_t> out{static_cast<std::uint8_t>(msg.size() >> 8),
                                static_cast<std::uint8_t>(msg.size())};
  out.insert(out.end(), msg.begin(), msg.end());
  (void)::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
}

// One forwarded UDP query waiting for its upstream.
struct Pending {
  dns::Query query;
  sockaddr_in6 client{};
  std::size_t upstream = 0;
  std::uint16_t id = 0;
  UniqueFd fd;
  SteadyClock::time_point deadline;
};

}  // namespace

std::string DnsUpstream::str() const {
  char text[INET6_ADDRSTRLEN] = {};
  std::uint16_t port = 0;
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
    return "[" + std::string(text) + "]:" + std::to_string(port);
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
  ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
  return std::string(text) + ":" + std::to_string(ntohs(a->sin_port));
}

Result<DnsUpstream> parseDnsUpstream(std::string_view text) {
  auto bad = [&] {
    return Error(errc::kInvalidArgument,
                 "bad DNS upstream: an IP address, [IPv6]:PORT or IPv4:PORT")
        .with("upstream", std::string(text.substr(0, 64)));
  };
  std::string host(text);
  unsigned long port = 53;
  if (text.starts_with("[")) {
    const std::size_t close = text.find("]:");
    if (close == std::string_view::npos) return bad();
    host = std::string(text.substr(1, close - 1));
    const std::string p(text.substr(close + 2));
    if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
      return bad();
    }
    port = std::stoul(p);
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    const std::size_t colon = text.find(':');
    host = std::string(text.substr(0, colon));
    const std::string p(text.substr(colon + 1));
    if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) {
      return bad();
    }
    port = std::stoul(p);
  }
  if (port == 0 || port > 65535) return bad();
  DnsUpstream up;
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&up.addr);
  auto* a4 = reinterpret_cast<sockaddr_in*>(&up.addr);
  if (::inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<std::uint16_t>(port));
    up.len = sizeof(sockaddr_in6);
  } else if (::inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<std::uint16_t>(port));
    up.len = sizeof(sockaddr_in);
  } else {
    return bad();
  }
  return up;
}

std::vector<DnsUpstream> parseResolvConf(std::string_view text) {
  std::vector<DnsUpstream> out;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    constexpr std::string_view kKey = "nameserver";
    if (!line.starts_with(kKey) || line.size() == kKey.size()) continue;
    if (line[kKey.size()] != ' ' && line[kKey.size()] != '\t') continue;
    line.remove_prefix(kKey.size());
    const std::size_t start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos) continue;
    line = line.substr(start);
    line = line.substr(0, line.find_first_of(" \t\r#;%"));  // no zone ids
    if (auto up = parseDnsUpstream(line)) out.push_back(*up);
  }
  return out;
}

Result<void> makeHostAddressLocal(const netdev::CommandRunner& run, const std::string& ip,
                                  const in6_addr& address) {
  PLFM_TRY(run({ip, "-6", "addr", "replace", netdev::ipv6Text(address) + "/128", "dev", "lo"}));
  return ok();
}

void releaseHostAddress(const netdev::CommandRunner& run, const std::string& ip,
                        const in6_addr& address) {
  (void)run({ip, "-6", "addr", "del", netdev::ipv6Text(address) + "/128", "dev", "lo"});
}

Result<std::unique_ptr<DnsResponder>> startMeshDnsResponder(
    const netdev::MeshPlan& plan, const netdev::MeshOptions& mesh,
    const std::vector<std::string>& upstreams, const netdev::CommandRunner& run) {
  PLFM_ASSIGN_OR_RETURN(auto filter,
                        netdev::parseMeshFilter(plan.cluster_prefix.str(), mesh.interface));
  PLFM_TRY(makeHostAddressLocal(run, mesh.ip, plan.self.address));
  DnsResponderConfig c;
  c.listen = plan.self.address;
  for (const std::string& u : upstreams) {
    PLFM_ASSIGN_OR_RETURN(auto up, parseDnsUpstream(u));
    c.upstreams.push_back(up);
  }
  if (upstreams.empty()) {
    if (auto text = readFile("/etc/resolv.conf")) c.upstreams = parseResolvConf(*text);
  }
  c.org_tag_of = [filter](const in6_addr& a) { return filter.tagOf(a); };
  return DnsResponder::start(std::move(c));
}

Result<std::unique_ptr<DnsResponder>> DnsResponder::start(DnsResponderConfig config) {
  std::unique_ptr<DnsResponder> r(new DnsResponder(std::move(config)));
  PLFM_ASSIGN_OR_RETURN(r->udp_, bound(SOCK_DGRAM, r->config_.listen, r->config_.port));
  sockaddr_in6 sa{};
  socklen_t len = sizeof sa;
  ::getsockname(r->udp_.get(), reinterpret_cast<sockaddr*>(&sa), &len);
  r->port_ = ntohs(sa.sin6_port);
  PLFM_ASSIGN_OR_RETURN(r->tcp_, bound(SOCK_STREAM, r->config_.listen, r->port_));
  if (::listen(r->tcp_.get(), 64) != 0) {
    return Error(errc::kIo, "listen failed").with("errno", std::strerror(errno));
  }
  r->stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!r->stop_) return Error(errc::kIo, "eventfd failed").with("errno", std::strerror(errno));
  r->udp_thread_ = std::thread([p = r.get()] { p->serveUdp(); });
  r->tcp_thread_ = std::thread([p = r.get()] { p->serveTcp(); });
  return r;
}

DnsResponder::~DnsResponder() {
  const std::uint64_t one = 1;
  if (stop_) (void)::write(stop_.get(), &one, sizeof one);
  if (udp_thread_.joinable()) udp_thread_.join();
  if (tcp_thread_.joinable()) tcp_thread_.join();
}

void DnsResponder::setTable(dns::ServiceTable table) {
  auto next = std::make_shared<const dns::ServiceTable>(std::move(table));
  const std::lock_guard lock(mu_);
  table_ = std::move(next);
}

std::vector<std::uint8_t> DnsResponder::answerLocal(std::span<const std::uint8_t> wire,
                                                    const in6_addr& source, std::size_t limit,
                                                    std::optional<dns::Query>& forward) {
  auto q = dns::parseQuery(wire);
  if (!q) return dns::errorReply(wire);
  if (!q->internal()) {
    if (config_.upstreams.empty()) return dns::emptyReply(*q, dns::kRcodeServFail);
    forward = std::move(*q);
    return {};
  }
  std::shared_ptr<const dns::ServiceTable> table;
  {
    const std::lock_guard lock(mu_);
    table = table_;
  }
  const std::uint32_t tag = config_.org_tag_of ? config_.org_tag_of(source) : 0;
  return dns::answerInternal(*q, tag, *table, limit == 0 ? q->udpLimit() : limit);
}

void DnsResponder::serveUdp() {
  std::list<Pending> pending;
  std::vector<std::uint8_t> buf(dns::kMaxTcpMessage);
  auto reply = [&](const sockaddr_in6& to, const std::vector<std::uint8_t>& msg) {
    if (msg.empty()) return;
    (void)::sendto(udp_.get(), msg.data(), msg.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                   sizeof to);
  };
  // Sends `p`'s query to its current upstream; false when none is left.
  auto send = [&](Pending& p) {
    for (; p.upstream < config_.upstreams.size(); ++p.upstream) {
      p.fd = connectedTo(config_.upstreams[p.upstream]);
      p.id = randomId();
      const auto msg = dns::forwardQuery(p.query, p.id);
      if (p.fd && ::send(p.fd.get(), msg.data(), msg.size(), 0) >= 0) {
        p.deadline = SteadyClock::now() + config_.upstream_timeout;
        return true;
      }
    }
    return false;
  };
  for (;;) {
    std::vector<pollfd> fds{{stop_.get(), POLLIN, 0}, {udp_.get(), POLLIN, 0}};
    for (const Pending& p : pending) fds.push_back({p.fd.get(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 100) < 0 && errno != EINTR) return;
    if ((fds[0].revents & POLLIN) != 0) return;
    if ((fds[1].revents & POLLIN) != 0) {
      sockaddr_in6 from{};
      socklen_t len = sizeof from;
      const ssize_t n = ::recvfrom(udp_.get(), buf.data(), buf.size(), MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from), &len);
      if (n > 0 && from.sin6_family == AF_INET6) {
        std::optional<dns::Query> forward;
        const std::span<const std::uint8_t> wire(buf.data(), static_cast<std::size_t>(n));
        reply(from, answerLocal(wire, from.sin6_addr, 0, forward));
        if (forward && pending.size() >= kMaxPending) {
          reply(from, dns::emptyReply(*forward, dns::kRcodeServFail));
        } else if (forward) {
          Pending& p = pending.emplace_back();
          p.query = std::move(*forward);
          p.client = from;
          if (!send(p)) {
            reply(from, dns::emptyReply(p.query, dns::kRcodeServFail));
            pending.pop_back();
          }
        }
      }
    }
    std::size_t i = 2;
    const auto now = SteadyClock::now();
    for (auto it = pending.begin(); it != pending.end(); ++i) {
      bool done = false;
      if (i < fds.size() && (fds[i].revents & POLLIN) != 0) {
        const ssize_t n = ::recv(it->fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
        const std::span<const std::uint8_t> answer(buf.data(),
                                                   n > 0 ? static_cast<std::size_t>(n) : 0);
        if (n > 0 && dns::answersForward(answer, it->query, it->id)) {
          reply(it->client, dns::relayAnswer(answer, it->query));
          done = true;
        }  // else: not the answer to our question; keep waiting
      }
      if (!done && now >= it->deadline) {
        ++it->upstream;
        if (!send(*it)) {
          reply(it->client, dns::emptyReply(it->query, dns::kRcodeServFail));
          done = true;
        }
      }
      it = done ? pending.erase(it) : std::next(it);
    }
  }
}

std::vector<std::uint8_t> DnsResponder::forwardBlocking(const dns::Query& q) {
  std::vector<std::uint8_t> buf(dns::kMaxTcpMessage);
  for (const DnsUpstream& up : config_.upstreams) {
    UniqueFd fd = connectedTo(up);
    const std::uint16_t id = randomId();
    const auto msg = dns::forwardQuery(q, id);
    if (!fd || ::send(fd.get(), msg.data(), msg.size(), 0) < 0) continue;
    const auto deadline = SteadyClock::now() + config_.upstream_timeout;
    for (auto now = SteadyClock::now(); now < deadline; now = SteadyClock::now()) {
      pollfd p{fd.get(), POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      if (::poll(&p, 1, static_cast<int>(left.count()) + 1) <= 0) break;
      const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
      const std::span<const std::uint8_t> answer(buf.data(),
                                                 n > 0 ? static_cast<std::size_t>(n) : 0);
      if (n > 0 && dns::answersForward(answer, q, id)) return dns::relayAnswer(answer, q);
    }
  }
  return dns::emptyReply(q, dns::kRcodeServFail);
}

// One connection at a time, each read bounded by a timeout: TCP is the
// fallback for truncated answers, not the main path.
void DnsResponder::serveTcp() {
  for (;;) {
    std::array<pollfd, 2> fds{{{stop_.get(), POLLIN, 0}, {tcp_.get(), POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) return;
    if ((fds[0].revents & POLLIN) != 0) return;
    if ((fds[1].revents & POLLIN) == 0) continue;
    sockaddr_in6 from{};
    socklen_t len = sizeof from;
    UniqueFd conn(::accept4(tcp_.get(), reinterpret_cast<sockaddr*>(&from), &len, SOCK_CLOEXEC));
    if (!conn || from.sin6_family != AF_INET6) continue;
    std::array<std::uint8_t, 2> size{};
    if (!readFull(conn.get(), size.data(), size.size())) continue;
    std::vector<std::uint8_t> msg(static_cast<std::size_t>((size[0] << 8) | size[1]));
    if (!readFull(conn.get(), msg.data(), msg.size())) continue;
    std::optional<dns::Query> forward;
    auto answer = answerLocal(msg, from.sin6_addr, dns::kMaxTcpMessage, forward);
    if (forward) answer = forwardBlocking(*forward);
    if (!answer.empty()) writeTcp(conn.get(), answer);
  }
}

}  // namespace plfm::agent
