#include "agent/health.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "plfm/core/unique_fd.h"

namespace plfm::agent {
namespace {

using SteadyClock = std::chrono::steady_clock;

int msLeft(SteadyClock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

Result<int> connectTo(const std::string& address, int port, SteadyClock::time_point deadline) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET6;
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in6);
  } else if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    family = AF_INET;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in);
  } else {
    return Error(errc::kInvalidArgument, "bad address " + address);
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errnoError("socket", errno);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
    int err = errno;
    ::close(fd);
    return Error(errc::kUnavailable, std::string("connect: ") + std::strerror(err));
  }
  pollfd p{fd, POLLOUT, 0};
  int r = ::poll(&p, 1, msLeft(deadline));
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
  if (r <= 0 || soerr != 0) {
    ::close(fd);
    return Error(errc::kUnavailable, r <= 0 ? std::string("connect timed out")
                                            : std::string("connect: ") + std::strerror(soerr));
  }
  return fd;
}

}  // namespace

Result<void> checkTcp(const std::string& address, int port, std::chrono::milliseconds timeout) {
  PLFM_ASSIGN_OR_RETURN(int fd, connectTo(address, port, SteadyClock::now() + timeout));
  ::close(fd);
  return ok();
}

Result<void> checkHttp(const std::string& address, int port, const std::string& path,
                       std::chrono::milliseconds timeout) {
  auto deadline = SteadyClock::now() + timeout;
  PLFM_ASSIGN_OR_RETURN(int raw, connectTo(address, port, deadline));
  UniqueFd fd(raw);
  std::string host = address.find(':') != std::string::npos ? "[" + address + "]" : address;
  std::string req = "GET " + (path.empty() ? std::string("/") : path) +
                    " HTTP/1.1\r\nHost: " + host +
                    "\r\nUser-Agent: plfm-node-agent-health\r\nConnection: close\r\n\r\n";
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    return Error(errc::kUnavailable, "sending the health request failed");
  }
  std::string head;
  while (head.find("\r\n") == std::string::npos && head.size() < 1024) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, msLeft(deadline)) <= 0)
      return Error(errc::kDeadlineExceeded, "no answer in time");
    char buf[512];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) return Error(errc::kUnavailable, "connection closed before a status line");
    head.append(buf, static_cast<size_t>(n));
  }
  // "HTTP/1.1 200 OK"
  auto sp = head.find(' ');
  int status = sp == std::string::npos ? 0 : std::atoi(head.c_str() + sp + 1);
  if (status < 200 || status >= 400) {
    return Error(errc::kUnavailable, "health endpoint answered " + std::to_string(status));
  }
  return ok();
}

}  // namespace plfm::agent
