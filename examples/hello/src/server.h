// The two listeners on [::] (dual stack: IPv4 clients arrive as
// ::ffff:a.b.c.d), the UDP echo socket (`hello probe ping`) and the accept loop: a thread per
// connection, at most kMaxConnections at once, and a graceful stop that closes the listeners and
// lets open connections finish.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>

#include "config.h"
#include "plfm/core/result.h"
#include "tls.h"

namespace plfm::hello {

inline constexpr int kMaxConnections = 256;

class Server {
 public:
  // Loads the certificate and binds both ports.
  [[nodiscard]] static Result<std::unique_ptr<Server>> create(Config config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] uint16_t healthPort() const { return health_port_; }
  [[nodiscard]] uint16_t echoPort() const { return echo_port_; }

  // Accepts until `stop_fd` is readable, then closes the listeners and waits
  // up to `drain` for open connections. Returns how many are still open
  // (their threads use this Server: the caller must then exit, not destroy it).
  [[nodiscard]] int run(int stop_fd, std::chrono::milliseconds drain);

 private:
  Server(Config config, TlsContext tls) : config_(std::move(config)), tls_(std::move(tls)) {}
  void accept(int listen_fd, bool https);
  void finished();  // a connection's end
  void echo();      // answers one datagram on echo_fd_

  Config config_;
  TlsContext tls_;
  int https_fd_ = -1;
  int health_fd_ = -1;
  int echo_fd_ = -1;
  uint16_t port_ = 0;
  uint16_t health_port_ = 0;
  uint16_t echo_port_ = 0;
  std::mutex mu_;
  std::condition_variable idle_;
  int active_ = 0;  // guarded by mu_
};

}  // namespace plfm::hello
