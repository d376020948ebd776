// The network probes of vt-test-workload (workload.cc), for the guest
// network filter's end-to-end test (test/e2e/netfilter_e2e_test.cc). The same
// static binary runs in the guests and, on the host side, in the test's
// network namespaces, so one set of probes plays every part.
//
//   netprobe PORT               serve [::]:PORT; each connection sends one
//                               command line and gets one answer line:
//                                 hello                  "hello from <id>"
//                                 tcp ADDR PORT          "tcp ok" | "tcp failed: why"
//                                 udp ADDR PORT SRC TEXT "udp sent" | "udp failed: why"
//                               (ADDR may be fe80::1%eth0; SRC is bound with
//                               IPV6_FREEBIND, so it need not be ours)
//   ask ADDR PORT LINE          one connection: send LINE, print the answer
//   udp-listen PORT             print "udp from SRC: TEXT" for each datagram
#include "workload/netprobe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78  // <linux/in6.h>
#endif

namespace vt_test {
namespace {

constexpr int kConnectTimeoutMs = 3000;

// "fd00::1" or "fe80::1%eth0" -> a sockaddr_in6; false when malformed.
bool parseAddress(const std::string& text, int port, sockaddr_in6& out) {
  out = sockaddr_in6{};
  out.sin6_family = AF_INET6;
  out.sin6_port = htons(static_cast<uint16_t>(port));
  std::string host = text;
  if (auto pct = text.find('%'); pct != std::string::npos) {
    host = text.substr(0, pct);
    out.sin6_scope_id = if_nametoindex(text.substr(pct + 1).c_str());
    if (out.sin6_scope_id == 0) return false;
  }
  return inet_pton(AF_INET6, host.c_str(), &out.sin6_addr) == 1;
}

std::string errnoText(int err) { return std::strerror(err); }

// A connected TCP socket, or -1 with `why` set; never waits longer than
// kConnectTimeoutMs (a dropped SYN is a timeout, not a hang).
int connectTcp(const std::string& addr, int port, std::string& why) {
  sockaddr_in6 sa{};
  if (!parseAddress(addr, port, sa)) {
    why = "bad address " + addr;
    return -1;
  }
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = errnoText(errno);
    return -1;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno != EINPROGRESS) {
    why = errnoText(errno);
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, kConnectTimeoutMs) != 1) {
    why = "timed out";
    ::close(fd);
    return -1;
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    why = errnoText(err);
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, 0);  // blocking from here on
  return fd;
}

std::string tcpProbe(const std::string& addr, int port) {
  std::string why;
  int fd = connectTcp(addr, port, why);
  if (fd < 0) return "tcp failed: " + why;
  ::close(fd);
  return "tcp ok";
}

std::string udpProbe(const std::string& addr, int port, const std::string& src,
                     const std::string& text) {
  sockaddr_in6 to{};
  sockaddr_in6 from{};
  if (!parseAddress(addr, port, to) || !parseAddress(src, 0, from))
    return "udp failed: bad address";
  int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int on = 1;
  ::setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &on, sizeof on);
  std::string result = "udp sent";
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
    result = "udp failed: bind: " + errnoText(errno);
  } else if (::sendto(fd, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&to),
                      sizeof to) < 0) {
    result = "udp failed: " + errnoText(errno);
  }
  ::close(fd);
  return result;
}

// Reads one line (without '\n') within 10 s; "" on EOF or timeout.
std::string readLine(int fd) {
  std::string line;
  char c = 0;
  while (line.size() < 1024) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10'000) != 1 || ::read(fd, &c, 1) != 1 || c == '\n') break;
    line += c;
  }
  return line;
}

std::string answer(const std::string& command) {
  std::istringstream in(command);
  std::string verb;
  in >> verb;
  if (verb == "tcp") {
    std::string addr;
    int port = 0;
    in >> addr >> port;
    return tcpProbe(addr, port);
  }
  if (verb == "udp") {
    std::string addr;
    std::string src;
    std::string text;
    int port = 0;
    in >> addr >> port >> src >> text;
    return udpProbe(addr, port, src, text);
  }
  const char* id = std::getenv("PLFM_INSTANCE_ID");
  return std::string("hello from ") + (id != nullptr ? id : "?");
}

int listenOn(int type, int port) {
  int fd = ::socket(AF_INET6, type | SOCK_CLOEXEC, 0);
  int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(static_cast<uint16_t>(port));
  a.sin6_addr = in6addr_any;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      (type == SOCK_STREAM && ::listen(fd, 64) != 0)) {
    std::fprintf(stderr, "cannot listen on %d: %s\n", port, std::strerror(errno));
    return -1;
  }
  return fd;
}

}  // namespace

int netprobe(int port, const volatile std::sig_atomic_t& stop) {
  int fd = listenOn(SOCK_STREAM, port);
  if (fd < 0) return 2;
  std::printf("netprobe listening on [::]:%d\n", port);
  std::fflush(stdout);
  while (stop == 0) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    int c = ::accept(fd, nullptr, nullptr);
    if (c < 0) continue;
    const std::string command = readLine(c);
    const std::string reply = answer(command) + "\n";
    (void)::write(c, reply.data(), reply.size());
    ::close(c);
    std::printf("netprobe: %s -> %s", command.c_str(), reply.c_str());
    std::fflush(stdout);
  }
  return 0;
}

int ask(const std::string& addr, int port, const std::string& line) {
  std::string why;
  int fd = connectTcp(addr, port, why);
  if (fd < 0) {
    std::printf("failed: %s\n", why.c_str());
    return 1;
  }
  const std::string out = line + "\n";
  (void)::write(fd, out.data(), out.size());
  char buf[512];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) std::fwrite(buf, 1, static_cast<size_t>(n), stdout);
  ::close(fd);
  return 0;
}

int udpListen(int port, const volatile std::sig_atomic_t& stop) {
  int fd = listenOn(SOCK_DGRAM, port);
  if (fd < 0) return 2;
  std::printf("udp listening on [::]:%d\n", port);
  std::fflush(stdout);
  while (stop == 0) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[512];
    sockaddr_in6 from{};
    socklen_t len = sizeof from;
    ssize_t n = ::recvfrom(fd, buf, sizeof buf - 1, 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) continue;
    char src[INET6_ADDRSTRLEN] = {};
    inet_ntop(AF_INET6, &from.sin6_addr, src, sizeof src);
    std::printf("udp from %s: %.*s\n", src, static_cast<int>(n), buf);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace vt_test
