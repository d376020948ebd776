// Real network peers for the ingress integration test and benchmark: a
// ClientHello made by OpenSSL's own client code, blocking socket helpers,
// and a small tagged TCP backend. They run on loopback sockets; nothing here
// fakes the proxy's side of a connection.
//
//   std::string hello = clientHello("a.example.com");   // real OpenSSL bytes
//   TagBackend a("a", "[::1]:0");  a.start();
//   int fd = connectTo("[::1]:" + port);  sendAll(fd, hello);
//   recvLine(fd) == "a"                                  // reached backend a
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::ingress::testing {

// The first flight of an OpenSSL TLS client (a ClientHello record) with this
// SNI, or none when `sni` is empty.
[[nodiscard]] std::string clientHello(const std::string& sni);

// A blocking TCP connection to "[::1]:443" or "127.0.0.1:443"; -1 on failure.
[[nodiscard]] int connectTo(const std::string& endpoint);
bool sendAll(int fd, std::string_view data);
// Reads up to and without the next '\n' (waiting up to timeout_ms). Returns
// "<eof>" when the peer closed first and "<timeout>" when nothing came.
[[nodiscard]] std::string recvLine(int fd, int timeout_ms = 5000);
// True when the peer closes (FIN or RST) within timeout_ms, reading and
// discarding anything it sends.
[[nodiscard]] bool waitClosed(int fd, int timeout_ms);

// A backend for raw (non-TLS) checks. For each connection it reads the
// first chunk (the ClientHello, after a PROXY header if any), answers
// "<tag>\n", then answers every later chunk with "<tag>:<chunk>\n", and on the
// client's FIN answers "<tag>:eof\n" and closes (a half-close check).
class TagBackend {
 public:
  TagBackend(std::string tag, std::string listen);
  ~TagBackend();
  TagBackend(const TagBackend&) = delete;
  TagBackend& operator=(const TagBackend&) = delete;

  [[nodiscard]] Result<void> start();
  void stop();
  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] size_t connections() const { return connections_.load(); }
  // The first chunk of the most recent connection.
  [[nodiscard]] std::string lastFirstChunk() const;

 private:
  void serve(int fd);

  std::string tag_;
  std::string listen_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> connections_{0};
  mutable std::mutex mu_;
  std::string last_first_;
  std::thread acceptor_;
  std::vector<std::thread> handlers_;
};

}  // namespace plfm::ingress::testing
