#include "netdev/tap.h"

// <net/if.h> before the kernel headers, so <linux/if.h> defers to it.
#include <net/if.h>
// clang-format off
#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <sys/ioctl.h>
// clang-format on
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>

#include "netdev/errors.h"
#include "plfm/core/sha256.h"

namespace plfm::netdev {
namespace {

// One rtnetlink socket for a sequence of requests; each request waits for
// its ACK so that errors map to the step that caused them.
class Rtnl {
 public:
  static Result<Rtnl> open() {
    mnl_socket* nl = mnl_socket_open(NETLINK_ROUTE);
    if (nl == nullptr) return errnoError("netlink socket", errno);
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
      int err = errno;
      mnl_socket_close(nl);
      return errnoError("netlink bind", err);
    }
    return Rtnl(nl);
  }
  Rtnl(Rtnl&& o) noexcept
      : nl_(std::exchange(o.nl_, nullptr)), buf_(std::move(o.buf_)), seq_(o.seq_) {}
  Rtnl& operator=(Rtnl&&) = delete;
  Rtnl(const Rtnl&) = delete;
  Rtnl& operator=(const Rtnl&) = delete;
  ~Rtnl() {
    if (nl_ != nullptr) mnl_socket_close(nl_);
  }

  nlmsghdr* begin(uint16_t type, uint16_t flags) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf_.get());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    nlh->nlmsg_seq = ++seq_;
    return nlh;
  }

  // Sends `nlh` and runs `cb` on each answer until the ACK or the dump's end.
  // Returns 0 or the errno the kernel answered.
  int run(nlmsghdr* nlh, mnl_cb_t cb = nullptr, void* data = nullptr) {
    if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return errno;
    unsigned portid = mnl_socket_get_portid(nl_);
    while (true) {
      ssize_t n = mnl_socket_recvfrom(nl_, buf_.get(), kBufSize);
      if (n < 0) return errno;
      int r = mnl_cb_run(buf_.get(), static_cast<size_t>(n), seq_, portid, cb, data);
      if (r < 0) return errno;
      if (r == MNL_CB_STOP) return 0;
    }
  }

 private:
  static constexpr size_t kBufSize = 32768;
  explicit Rtnl(mnl_socket* nl) : nl_(nl), buf_(new char[kBufSize]) {}
  mnl_socket* nl_;
  std::unique_ptr<char[]> buf_;
  uint32_t seq_ = static_cast<uint32_t>(time(nullptr));
};

Error netlinkError(std::string_view step, const std::string& name, int err) {
  return Error(errc::kNetlinkFailed, std::string(step) + " on " + name + ": " + std::strerror(err))
      .with("device", name)
      .with("step", std::string(step));
}

Result<void> createPersistentTap(const std::string& name) {
  int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return errnoError("open /dev/net/tun", errno);
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  int rc = ::ioctl(fd, TUNSETIFF, &ifr);
  if (rc == 0) rc = ::ioctl(fd, TUNSETPERSIST, 1);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Error(errc::kTapFailed, "creating tap " + name + ": " + std::strerror(err));
  return ok();
}

Result<void> writeSysctl(const std::string& path, std::string_view value) {
  std::ofstream out(path);
  out << value;
  out.close();
  if (!out) return Error(errc::kIo, "writing " + path);
  return ok();
}

// A host route (/32 or /128) to `dst` by the link `index`.
int addHostRoute(Rtnl& nl, unsigned index, int family, const void* dst, size_t len) {
  nlmsghdr* nlh = nl.begin(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<unsigned char>(family);
  rtm->rtm_dst_len = static_cast<unsigned char>(len * 8);
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_scope = family == AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  mnl_attr_put(nlh, RTA_DST, len, dst);
  mnl_attr_put_u32(nlh, RTA_OIF, index);
  return nl.run(nlh);
}

}  // namespace

std::string tapNameFor(std::string_view instance_id) {
  return std::string(kTapPrefix) + Sha256::hex(instance_id).substr(0, 11);
}

std::string macFor(std::string_view instance_id) {
  std::string h = Sha256::hex(std::string("mac:") + std::string(instance_id));
  // 02: locally administered, unicast.
  std::string mac = "02";
  for (int i = 0; i < 5; ++i) mac += ":" + h.substr(static_cast<size_t>(i) * 2, 2);
  return mac;
}

bool linkExists(const std::string& name) { return if_nametoindex(name.c_str()) != 0; }

Result<void> ensureTap(const TapConfig& config) {
  if (config.name.empty() || config.name.size() >= IFNAMSIZ) {
    return Error(errc::kInvalidArgument, "bad tap name").with("device", config.name);
  }
  if (!linkExists(config.name)) PLFM_TRY(createPersistentTap(config.name));
  unsigned index = if_nametoindex(config.name.c_str());
  if (index == 0) return errnoError("if_nametoindex " + config.name, errno);
  PLFM_ASSIGN_OR_RETURN(auto nl, Rtnl::open());

  // Link: MTU, up.
  {
    nlmsghdr* nlh = nl.begin(RTM_NEWLINK, NLM_F_ACK);
    auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = static_cast<int>(index);
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    mnl_attr_put_u32(nlh, IFLA_MTU, static_cast<uint32_t>(config.mtu));
    if (int err = nl.run(nlh)) return netlinkError("setting link up", config.name, err);
  }
  // fe80::1/64, without duplicate address detection: it is the same on
  // every tap and must be usable the moment the guest boots.
  (void)writeSysctl("/proc/sys/net/ipv6/conf/" + config.name + "/accept_ra", "0");
  {
    in6_addr gw{};
    inet_pton(AF_INET6, std::string(kGatewayLinkLocal).c_str(), &gw);
    nlmsghdr* nlh = nl.begin(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = AF_INET6;
    ifa->ifa_prefixlen = 64;
    ifa->ifa_flags = IFA_F_NODAD | IFA_F_PERMANENT;
    ifa->ifa_scope = RT_SCOPE_LINK;
    ifa->ifa_index = index;
    mnl_attr_put(nlh, IFA_LOCAL, sizeof gw, &gw);
    mnl_attr_put(nlh, IFA_ADDRESS, sizeof gw, &gw);
    mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD | IFA_F_PERMANENT);
    if (int err = nl.run(nlh); err != 0 && err != EEXIST) {
      return netlinkError("adding fe80::1", config.name, err);
    }
  }
  if (!config.guest_address.empty()) {
    in6_addr dst{};
    if (inet_pton(AF_INET6, config.guest_address.c_str(), &dst) != 1) {
      return Error(errc::kInvalidArgument, "bad guest IPv6 address")
          .with("address", config.guest_address);
    }
    if (int err = addHostRoute(nl, index, AF_INET6, &dst, sizeof dst)) {
      return netlinkError("routing " + config.guest_address, config.name, err);
    }
  }
  if (!config.guest_ipv4.empty()) {
    // The IPv4 twin of fe80::1: 169.254.0.1/32 on the tap (the guest's
    // on-link gateway), and a /32 route to the guest.
    in_addr gw4{};
    in_addr dst{};
    inet_pton(AF_INET, std::string(kGatewayIpv4).c_str(), &gw4);
    if (inet_pton(AF_INET, config.guest_ipv4.c_str(), &dst) != 1) {
      return Error(errc::kInvalidArgument, "bad guest IPv4 address")
          .with("address", config.guest_ipv4);
    }
    nlmsghdr* nlh = nl.begin(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = 32;
    ifa->ifa_flags = IFA_F_PERMANENT;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = index;
    mnl_attr_put(nlh, IFA_LOCAL, sizeof gw4, &gw4);
    mnl_attr_put(nlh, IFA_ADDRESS, sizeof gw4, &gw4);
    if (int err = nl.run(nlh); err != 0 && err != EEXIST) {
      return netlinkError("adding " + std::string(kGatewayIpv4), config.name, err);
    }
    if (int err = addHostRoute(nl, index, AF_INET, &dst, sizeof dst)) {
      return netlinkError("routing " + config.guest_ipv4, config.name, err);
    }
  }
  PLFM_TRY(writeSysctl("/proc/sys/net/ipv6/conf/" + config.name + "/forwarding", "1"));
  return ok();
}

Result<void> removeTap(const std::string& name) {
  unsigned index = if_nametoindex(name.c_str());
  if (index == 0) return ok();
  PLFM_ASSIGN_OR_RETURN(auto nl, Rtnl::open());
  nlmsghdr* nlh = nl.begin(RTM_DELLINK, NLM_F_ACK);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = static_cast<int>(index);
  if (int err = nl.run(nlh); err != 0 && err != ENODEV) {
    return netlinkError("deleting link", name, err);
  }
  return ok();
}

Result<std::vector<std::string>> listLinks(std::string_view prefix) {
  PLFM_ASSIGN_OR_RETURN(auto nl, Rtnl::open());
  nlmsghdr* nlh = nl.begin(RTM_GETLINK, NLM_F_DUMP);
  auto* gen = static_cast<rtgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtgenmsg)));
  gen->rtgen_family = AF_PACKET;
  struct Ctx {
    std::string_view prefix;
    std::vector<std::string> names;
  } ctx{prefix, {}};
  auto cb = [](const nlmsghdr* msg, void* data) -> int {
    auto* c = static_cast<Ctx*>(data);
    const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(msg));
    for (auto* attr =
             static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(msg, sizeof(ifinfomsg)));
         mnl_attr_ok(attr, static_cast<int>(tail - reinterpret_cast<const char*>(attr)));
         attr = mnl_attr_next(attr)) {
      if (mnl_attr_get_type(attr) == IFLA_IFNAME) {
        std::string name = mnl_attr_get_str(attr);
        if (name.rfind(c->prefix, 0) == 0) c->names.push_back(name);
      }
    }
    return MNL_CB_OK;
  };
  if (int err = nl.run(nlh, cb, &ctx)) return netlinkError("listing links", "*", err);
  std::sort(ctx.names.begin(), ctx.names.end());
  return ctx.names;
}

}  // namespace plfm::netdev
