#include "netlink.h"

#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "sys.h"

// The kernel's NLMSG_*/RTA_* size macros are written with C casts.
#pragma GCC diagnostic ignored "-Wold-style-cast"

namespace plfm::init {

namespace {

// One rtnetlink request: nlmsghdr, a fixed struct, then attributes.
class Request {
 public:
  Request(uint16_t type, uint16_t flags) {
    auto* h = header();
    h->nlmsg_type = type;
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    h->nlmsg_len = NLMSG_LENGTH(0);
  }
  template <class T>
  T* body() {
    auto* h = header();
    h->nlmsg_len = NLMSG_LENGTH(sizeof(T));
    return static_cast<T*>(NLMSG_DATA(h));
  }
  void attr(uint16_t type, const void* data, size_t len) {
    auto* h = header();
    const size_t at = NLMSG_ALIGN(h->nlmsg_len);
    rtattr rta{};
    rta.rta_type = type;
    rta.rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    // memcpy rather than an rtattr* into the byte buffer: no aliasing or
    // alignment questions.
    char* bytes = reinterpret_cast<char*>(buf_);
    std::memcpy(bytes + at, &rta, sizeof rta);
    std::memcpy(bytes + at + RTA_LENGTH(0), data, len);
    h->nlmsg_len = static_cast<uint32_t>(at + RTA_ALIGN(rta.rta_len));
  }
  template <class T>
  void attr(uint16_t type, const T& value) {
    attr(type, &value, sizeof value);
  }
  nlmsghdr* header() { return buf_; }

 private:
  nlmsghdr buf_[512 / sizeof(nlmsghdr)] = {};
};

class Netlink {
 public:
  Netlink() : fd_(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) {}
  ~Netlink() {
    if (fd_ >= 0) ::close(fd_);
  }
  Netlink(const Netlink&) = delete;
  Netlink& operator=(const Netlink&) = delete;

  Result<void> call(Request& req, const std::string& what) {
    if (fd_ < 0) return fail(errnoText("netlink socket", errno));
    auto* h = req.header();
    h->nlmsg_seq = ++seq_;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(fd_, h, h->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) <
        0) {
      return fail(errnoText(what, errno));
    }
    char buf[4096];
    while (true) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail(errnoText(what, errno));
      // Headers are copied out rather than cast in place: the buffer is
      // bytes, and the kernel aligns messages to 4 only.
      const auto len = static_cast<size_t>(n);
      for (size_t at = 0; at + sizeof(nlmsghdr) <= len;) {
        nlmsghdr r{};
        std::memcpy(&r, buf + at, sizeof r);
        if (r.nlmsg_len < sizeof r || r.nlmsg_len > len - at) break;
        if (r.nlmsg_seq == seq_ && r.nlmsg_type == NLMSG_ERROR &&
            r.nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr))) {
          nlmsgerr e{};
          std::memcpy(&e, buf + at + NLMSG_HDRLEN, sizeof e);
          // EEXIST: already configured (a re-run), which is what we wanted.
          if (e.error == 0 || e.error == -EEXIST) return {};
          return fail(errnoText(what, -e.error));
        }
        at += NLMSG_ALIGN(r.nlmsg_len);
      }
    }
  }

 private:
  int fd_;
  uint32_t seq_ = 0;
};

Result<void> linkUp(Netlink& nl, int index, std::optional<uint32_t> mtu, const std::string& name) {
  Request req(RTM_NEWLINK, 0);
  auto* ifi = req.body<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  if (mtu) req.attr(IFLA_MTU, *mtu);
  return nl.call(req, "bring up " + name);
}

template <size_t N>
Result<void> addAddress(Netlink& nl, int index, int family, const std::array<uint8_t, N>& address,
                        uint8_t prefix_len) {
  Request req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifa = req.body<ifaddrmsg>();
  ifa->ifa_family = static_cast<uint8_t>(family);
  ifa->ifa_prefixlen = prefix_len;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<uint32_t>(index);
  req.attr(IFA_LOCAL, address.data(), N);
  req.attr(IFA_ADDRESS, address.data(), N);
  if (family == AF_INET6) {
    const uint32_t flags = IFA_F_NODAD;
    req.attr(IFA_FLAGS, flags);
  }
  return nl.call(req, std::string("add ") + (family == AF_INET6 ? "IPv6" : "IPv4") + " address");
}

template <size_t N>
Result<void> addDefaultRoute(Netlink& nl, int index, int family,
                             const std::array<uint8_t, N>& gateway) {
  Request req(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  auto* rtm = req.body<rtmsg>();
  rtm->rtm_family = static_cast<uint8_t>(family);
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  // The IPv4 gateway may be outside a /32; onlink says "it is on eth0".
  if (family == AF_INET) rtm->rtm_flags = RTNH_F_ONLINK;
  req.attr(RTA_GATEWAY, gateway.data(), N);
  const auto oif = static_cast<uint32_t>(index);
  req.attr(RTA_OIF, oif);
  return nl.call(req,
                 std::string("add ") + (family == AF_INET6 ? "IPv6" : "IPv4") + " default route");
}

}  // namespace

Result<void> configureNetwork(const std::optional<guest_proto::NetworkConfig>& net) {
  Netlink nl;
  const int lo = static_cast<int>(::if_nametoindex("lo"));
  if (lo == 0) return fail("no loopback interface");
  auto up = linkUp(nl, lo, std::nullopt, "lo");
  if (!up) return up;
  if (!net) return {};
  int eth = 0;
  // virtio_net probes as its module loads, but allow for a slow probe.
  for (int i = 0; i < 200 && eth == 0; ++i) {
    eth = static_cast<int>(::if_nametoindex(kGuestNic));
    if (eth == 0) ::usleep(10'000);
  }
  if (eth == 0) return fail(std::string("network configured but no ") + kGuestNic);
  up = linkUp(nl, eth, net->mtu, kGuestNic);
  if (!up) return up;
  auto added = addAddress(nl, eth, AF_INET6, net->ipv6_address, net->ipv6_prefix_len);
  if (!added) return added;
  added = addDefaultRoute(nl, eth, AF_INET6, net->ipv6_gateway);
  if (!added) return added;
  if (net->ipv4) {
    added = addAddress(nl, eth, AF_INET, net->ipv4->address, net->ipv4->prefix_len);
    if (!added) return added;
    if (net->ipv4->gateway) {
      added = addDefaultRoute(nl, eth, AF_INET, *net->ipv4->gateway);
      if (!added) return added;
    }
  }
  return {};
}

}  // namespace plfm::init
