#include "health_check.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <vector>

#include "plfm/core/log.h"

namespace plfm::ingress {
namespace {

struct Probe {
  const Backend* backend = nullptr;
  int fd = -1;
  bool done = false;
  bool up = false;
};

// Starts a non-blocking connect; `done` when it finished (or failed) at once.
void begin(Probe& p) {
  const Backend& b = *p.backend;
  p.fd = ::socket(b.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p.fd < 0) {
    // Out of descriptors says nothing about the backend: leave it as it is.
    p.done = true;
    p.up = !b.load->check_down.load(std::memory_order_relaxed);
    return;
  }
  if (::connect(p.fd, reinterpret_cast<const sockaddr*>(&b.addr), b.addr_len) == 0) {
    p.done = p.up = true;
  } else if (errno != EINPROGRESS) {
    p.done = true;
  }
}

// Waits up to `timeout` for the connects in flight; what has not connected by
// then is down.
void finish(std::vector<Probe>& probes, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<Probe*> owners;
    for (auto& p : probes) {
      if (p.done) continue;
      fds.push_back({p.fd, POLLOUT, 0});
      owners.push_back(&p);
    }
    if (fds.empty()) return;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    const int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) return;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fds[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
      owners[i]->done = true;
      owners[i]->up = err == 0 && (fds[i].revents & (POLLERR | POLLHUP)) == 0;
    }
  }
}

}  // namespace

HealthChecker::HealthChecker(SharedTable& table, IngressStats& stats, HealthCheckOptions options)
    : table_(table), stats_(stats), options_(options) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  if (options_.interval.count() <= 0 || thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void HealthChecker::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HealthChecker::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    checkOnce();
    lock.lock();
    cv_.wait_for(lock, options_.interval, [this] { return stop_; });
  }
}

void HealthChecker::checkOnce() {
  // Hold the snapshot for the round: its routes own the Backends probed.
  const std::shared_ptr<const RoutingTable> table = table_.load();
  if (!table) return;
  std::map<const BackendLoad*, Probe> by_load;  // each endpoint once
  for (const Route* route : table->routes()) {
    for (const Backend& b : route->backends) {
      if (b.healthy) by_load.try_emplace(b.load.get(), Probe{&b});
    }
  }
  std::vector<Probe> probes;
  probes.reserve(by_load.size());
  for (auto& [load, probe] : by_load) probes.push_back(probe);
  for (auto& p : probes) begin(p);
  finish(probes, options_.timeout);
  int64_t down = 0;
  for (auto& p : probes) {
    if (p.fd >= 0) ::close(p.fd);
    const bool was_down = p.backend->load->check_down.exchange(!p.up, std::memory_order_relaxed);
    if (!p.up) {
      ++down;
      stats_.health_check_failures.fetch_add(1, std::memory_order_relaxed);
      if (!was_down) {
        log::warn("backend failed its connect check; passed over until it passes",
                  {{"backend", p.backend->endpoint.toString()}});
      }
    } else if (was_down) {
      log::info("backend passes its connect check again",
                {{"backend", p.backend->endpoint.toString()}});
    }
  }
  stats_.backends_down.store(down, std::memory_order_relaxed);
}

}  // namespace plfm::ingress
