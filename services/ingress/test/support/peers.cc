#include "peers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace plfm::ingress::testing {

namespace {

bool toSockaddr(const std::string& endpoint, sockaddr_storage& ss, socklen_t& len) {
  std::memset(&ss, 0, sizeof ss);
  std::string host;
  std::string port;
  if (!endpoint.empty() && endpoint.front() == '[') {
    const size_t close = endpoint.find(']');
    if (close == std::string::npos) return false;
    host = endpoint.substr(1, close - 1);
    port = endpoint.substr(close + 2);
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(static_cast<uint16_t>(std::stoi(port)));
    if (::inet_pton(AF_INET6, host.c_str(), &sa.sin6_addr) != 1) return false;
    std::memcpy(&ss, &sa, sizeof sa);
    len = sizeof sa;
    return true;
  }
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos) return false;
  host = endpoint.substr(0, colon);
  port = endpoint.substr(colon + 1);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(port)));
  if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) return false;
  std::memcpy(&ss, &sa, sizeof sa);
  len = sizeof sa;
  return true;
}

}  // namespace

std::string clientHello(const std::string& sni) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  if (!sni.empty()) {
    // SSL_set_tlsext_host_name is a macro with a C cast.
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(sni.c_str()));
  }
  SSL_set_connect_state(ssl);
  (void)SSL_do_handshake(ssl);  // wants to read the ServerHello: the hello is in wbio
  char* data = nullptr;
  const long n = BIO_get_mem_data(wbio, &data);
  std::string out(data, static_cast<size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return out;
}

int connectTo(const std::string& endpoint) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!toSockaddr(endpoint, ss, len)) return -1;
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string recvLine(int fd, int timeout_ms) {
  std::string line;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return "<timeout>";
    char c = 0;
    const ssize_t n = ::recv(fd, &c, 1, 0);
    if (n <= 0) return "<eof>";
    if (c == '\n') return line;
    line.push_back(c);
  }
}

bool waitClosed(int fd, int timeout_ms) {
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return false;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
  }
}

TagBackend::TagBackend(std::string tag, std::string listen)
    : tag_(std::move(tag)), listen_(std::move(listen)) {}

TagBackend::~TagBackend() { stop(); }

Result<void> TagBackend::start() {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!toSockaddr(listen_, ss, len)) return Error(errc::kInvalidArgument, "bad address");
  fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd_, reinterpret_cast<const sockaddr*>(&ss), len) != 0 || ::listen(fd_, 512) != 0) {
    return errnoError("bind " + listen_, errno);
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  acceptor_ = std::thread([this] {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      connections_.fetch_add(1);
      std::lock_guard lock(mu_);
      handlers_.emplace_back([this, c] { serve(c); });
    }
  });
  return ok();
}

void TagBackend::serve(int fd) {
  char buf[16384];
  bool first = true;
  while (!stop_) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) break;
    if (n == 0) {
      (void)sendAll(fd, tag_ + ":eof\n");
      break;
    }
    const std::string chunk(buf, static_cast<size_t>(n));
    if (first) {
      first = false;
      {
        std::lock_guard lock(mu_);
        last_first_ = chunk;
      }
      if (!sendAll(fd, tag_ + "\n")) break;
    } else if (!sendAll(fd, tag_ + ":" + chunk + "\n")) {
      break;
    }
  }
  ::close(fd);
}

std::string TagBackend::lastFirstChunk() const {
  std::lock_guard lock(mu_);
  return last_first_;
}

void TagBackend::stop() {
  stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> handlers;
  {
    std::lock_guard lock(mu_);
    handlers.swap(handlers_);
  }
  for (auto& t : handlers) t.join();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace plfm::ingress::testing
