// Test helpers for libs/http: a raw socket, URL builders and a Gate that
// holds a handler until the test lets it go.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "plfm/http/http.h"

namespace plfm::http::testing {

// Lets a test hold handlers at a point and know that they got there, without
// sleeping.
class Gate {
 public:
  // Called by a handler: records the arrival, then blocks until open() (or
  // `limit`, so that a failing test cannot hang).
  void pass(std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    ++arrived_;
    cv_.notify_all();
    cv_.wait_for(lock, limit, [&] { return open_; });
  }
  bool waitArrived(int count = 1, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return arrived_ >= count; });
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  bool open_ = false;
};

// A plain blocking socket for bytes the http::Client would never send
// (garbage, partial requests) and for watching how the server closes.

class RawConn {
 public:
  // `endpoint` as reported by Server::endpoints(): "[::1]:p", "127.0.0.1:p",
  // "unix:/path". `source`: the local IPv4 address to connect from (e.g.
  // "127.0.0.2", another loopback source); empty for the kernel's choice.
  explicit RawConn(const std::string& endpoint, std::string source = {})
      : source_(std::move(source)) {
    if (endpoint.starts_with("unix:")) {
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      const std::string path = endpoint.substr(5);
      std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
      connectTo(AF_UNIX, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
      return;
    }
    const size_t colon = endpoint.rfind(':');
    const auto port = static_cast<uint16_t>(std::stoi(endpoint.substr(colon + 1)));
    if (endpoint.front() == '[') {
      sockaddr_in6 addr{};
      addr.sin6_family = AF_INET6;
      addr.sin6_port = htons(port);
      ::inet_pton(AF_INET6, endpoint.substr(1, colon - 2).c_str(), &addr.sin6_addr);
      connectTo(AF_INET6, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    } else {
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(port);
      ::inet_pton(AF_INET, endpoint.substr(0, colon).c_str(), &addr.sin_addr);
      connectTo(AF_INET, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    }
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  ~RawConn() {
    if (fd_ >= 0) ::close(fd_);
  }

  [[nodiscard]] bool connected() const { return fd_ >= 0 && connect_errno_ == 0; }
  [[nodiscard]] int connectErrno() const { return connect_errno_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Everything the server sends until it closes (or `timeout` passes).
  std::string readToEof(std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    eof_ = false;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return out;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return out;
      std::array<char, 4096> buf{};
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n <= 0) {
        eof_ = true;
        return out;
      }
      out.append(buf.data(), static_cast<size_t>(n));
    }
  }

  // Reads until the bytes so far contain `count` complete responses with a
  // Content-Length (no chunked encoding).
  std::string readResponses(size_t count = 1,
                            std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (completeResponses(out) < count) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      std::array<char, 4096> buf{};
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      out.append(buf.data(), static_cast<size_t>(n));
    }
    return out;
  }

  // True when the last readToEof() ended because the server closed.
  [[nodiscard]] bool sawEof() const { return eof_; }

 private:
  void connectTo(int family, const sockaddr* addr, socklen_t len) {
    fd_ = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!source_.empty()) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      ::inet_pton(AF_INET, source_.c_str(), &local.sin_addr);
      if (::bind(fd_, reinterpret_cast<const sockaddr*>(&local), sizeof(local)) != 0) {
        connect_errno_ = errno;
        return;
      }
    }
    if (::connect(fd_, addr, len) != 0) connect_errno_ = errno;
  }

  static size_t completeResponses(std::string_view data) {
    size_t count = 0;
    for (;;) {
      const size_t head_end = data.find("\r\n\r\n");
      if (head_end == std::string_view::npos) return count;
      size_t length = 0;
      const std::string_view head = data.substr(0, head_end);
      const size_t cl = head.find("Content-Length: ");
      if (cl != std::string_view::npos) {
        length = std::stoul(std::string(head.substr(cl + 16, head.find("\r\n", cl) - cl - 16)));
      }
      if (data.size() < head_end + 4 + length) return count;
      ++count;
      data.remove_prefix(head_end + 4 + length);
    }
  }

  std::string source_;
  int fd_ = -1;
  int connect_errno_ = 0;
  bool eof_ = false;
};

// A GET of `url` for http::request.
inline ClientRequest get(std::string url,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  ClientRequest req;
  req.url = std::move(url);
  req.timeout = timeout;
  return req;
}

// The base URL of a Server endpoint: "http://[::1]:p" or "unix:/path".
inline std::string baseUrl(const std::string& endpoint) {
  return endpoint.starts_with("unix:") ? endpoint : "http://" + endpoint;
}

// A request URL for `target` on a Server endpoint.
inline std::string urlFor(const std::string& endpoint, std::string_view target) {
  return endpoint.starts_with("unix:") ? endpoint + ":" + std::string(target)
                                       : "http://" + endpoint + std::string(target);
}

}  // namespace plfm::http::testing
