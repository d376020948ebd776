#include "server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

#include "connection.h"
#include "log.h"

namespace plfm::hello {
namespace {

Result<int> listenDualStack(uint16_t port, uint16_t& bound, int type = SOCK_STREAM) {
  int fd = ::socket(AF_INET6, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return errnoError("socket", errno);
  int on = 1;
  int off = 0;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0) {
    int e = errno;
    ::close(fd);
    return errnoError("IPV6_V6ONLY off", e);
  }
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  a.sin6_addr = in6addr_any;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      (type == SOCK_STREAM && ::listen(fd, 128) != 0) ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    int e = errno;
    ::close(fd);
    return errnoError(std::string(type == SOCK_STREAM ? "listen" : "bind UDP") +
                          " on [::]:" + std::to_string(port),
                      e);
  }
  bound = ntohs(a.sin6_port);
  return fd;
}

net::IpEndpoint endpointOf(const sockaddr_in6& a) {
  std::array<uint8_t, 16> bytes{};
  std::memcpy(bytes.data(), &a.sin6_addr, bytes.size());
  return net::IpEndpoint::ipv6(bytes, ntohs(a.sin6_port));
}

}  // namespace

Result<std::unique_ptr<Server>> Server::create(Config config) {
  PLFM_ASSIGN_OR_RETURN(auto tls, TlsContext::load(config.cert_file, config.key_file));
  std::unique_ptr<Server> s(new Server(std::move(config), std::move(tls)));
  PLFM_ASSIGN_OR_RETURN(s->https_fd_, listenDualStack(s->config_.port, s->port_));
  PLFM_ASSIGN_OR_RETURN(s->health_fd_, listenDualStack(s->config_.health_port, s->health_port_));
  PLFM_ASSIGN_OR_RETURN(s->echo_fd_,
                        listenDualStack(s->config_.echo_port, s->echo_port_, SOCK_DGRAM));
  return s;
}

Server::~Server() {
  if (https_fd_ >= 0) ::close(https_fd_);
  if (health_fd_ >= 0) ::close(health_fd_);
  if (echo_fd_ >= 0) ::close(echo_fd_);
}

void Server::echo() {
  // Datagrams are small (the probe's are under 64 bytes); a longer one is
  // echoed truncated. Errors (the sender gone) drop that datagram.
  std::array<char, 1500> buf{};
  sockaddr_in6 peer{};
  socklen_t len = sizeof peer;
  const ssize_t n = ::recvfrom(echo_fd_, buf.data(), buf.size(), MSG_DONTWAIT,
                               reinterpret_cast<sockaddr*>(&peer), &len);
  if (n < 0) return;
  (void)::sendto(echo_fd_, buf.data(), static_cast<size_t>(n), MSG_DONTWAIT,
                 reinterpret_cast<sockaddr*>(&peer), len);
}

void Server::accept(int listen_fd, bool https) {
  sockaddr_in6 peer{};
  socklen_t len = sizeof peer;
  int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
  if (fd < 0) {
    // ECONNABORTED and friends: the client gave up; EMFILE: shed load.
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
      logLine(std::string("accept failed: ") + std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return;
  }
  const net::IpEndpoint client = endpointOf(peer);
  {
    std::lock_guard lock(mu_);
    if (active_ >= kMaxConnections) {
      ::close(fd);
      logLine("refused client=" + clientText(client) + " reason=\"too many connections\"");
      return;
    }
    ++active_;
  }
  const Listener listener = https ? Listener::kHttps : Listener::kHealth;
  try {
    std::thread([this, fd, listener, client] {
      serveConnection(fd, listener, client, config_, tls_.get());
      finished();
    }).detach();
  } catch (const std::system_error& e) {  // out of threads: shed this one
    ::close(fd);
    finished();
    logLine("refused client=" + clientText(client) + " reason=\"" + e.what() + "\"");
  }
}

void Server::finished() {
  std::lock_guard lock(mu_);
  if (--active_ == 0) idle_.notify_all();
}

int Server::run(int stop_fd, std::chrono::milliseconds drain) {
  std::array<pollfd, 4> fds = {pollfd{https_fd_, POLLIN, 0}, pollfd{health_fd_, POLLIN, 0},
                               pollfd{stop_fd, POLLIN, 0}, pollfd{echo_fd_, POLLIN, 0}};
  for (;;) {
    int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      logLine(std::string("poll failed: ") + std::strerror(errno));
      break;
    }
    if (fds[2].revents != 0) break;
    if (fds[0].revents != 0) accept(https_fd_, true);
    if (fds[1].revents != 0) accept(health_fd_, false);
    if (fds[3].revents != 0) echo();
  }
  // Stop taking connections first, so that the ingress sends new ones to
  // the other instances while these finish.
  ::close(https_fd_);
  ::close(health_fd_);
  ::close(echo_fd_);
  https_fd_ = health_fd_ = echo_fd_ = -1;
  std::unique_lock lock(mu_);
  logLine("draining connections=" + std::to_string(active_));
  idle_.wait_for(lock, drain, [this] { return active_ == 0; });
  return active_;
}

}  // namespace plfm::hello
